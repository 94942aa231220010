// A progress callback for long library calls (loading, converting, quantizing, calibrating):
// the library reports "done of total" units of work and a short label; the caller decides how
// to show it (the edgeq CLI draws a bar with an ETA). An empty callback costs one branch.
#pragma once
#include <cstddef>
#include <functional>
#include <string>

namespace edgeq {

// done units of total are finished; what names the current step ("blk.3.ffn_up").
using progress_fn = std::function<void(std::size_t done, std::size_t total, const std::string& what)>;

inline void report(const progress_fn& p, std::size_t done, std::size_t total, const std::string& what) {
    if (p) p(done, total, what);
}

}  // namespace edgeq
