// The CLI's progress bar: one line on stderr redrawn in place, with the rate and an ETA. It
// stays silent for the first two seconds (quick jobs print nothing) and when stderr is not a
// terminal it prints a plain line at most every 10 seconds, so logs stay readable.
#pragma once
#include <unistd.h>

#include <chrono>
#include <cstddef>
#include <cstdio>
#include <string>
#include <utility>

#include <edgeq/core/progress.hpp>

namespace cli {

class progress_bar {
   public:
    explicit progress_bar(std::string title, bool enabled = true)
        : title_(std::move(title)), enabled_(enabled), tty_(isatty(2) != 0), start_(clock::now()), last_(start_) {}
    ~progress_bar() { finish(); }

    // The callback to hand to the library.
    edgeq::progress_fn callback() {
        return [this](std::size_t done, std::size_t total, const std::string& what) { update(done, total, what); };
    }

    void update(std::size_t done, std::size_t total, const std::string& what) {
        if (!enabled_ || total == 0) return;
        const auto now = clock::now();
        const double elapsed = seconds(now - start_);
        if (elapsed < 2.0 || seconds(now - last_) < (tty_ ? 0.2 : 10.0)) return;
        last_ = now;
        const double f = double(done) / double(total);
        const double eta = f > 0 ? elapsed * (1 - f) / f : 0;
        char line[256];
        if (tty_) {
            const int width = 30, fill = int(f * width + 0.5);
            std::string bar(std::size_t(fill), '#');
            bar.resize(std::size_t(width), '.');
            std::snprintf(line, sizeof line, "\r%s [%s] %3.0f%% %s  %s elapsed, ETA %s\033[K", title_.c_str(), bar.c_str(),
                          100 * f, what.substr(0, 24).c_str(), clock_text(elapsed).c_str(), clock_text(eta).c_str());
        } else {
            std::snprintf(line, sizeof line, "%s: %3.0f%% (%s), %s elapsed, ETA %s\n", title_.c_str(), 100 * f,
                          what.substr(0, 40).c_str(), clock_text(elapsed).c_str(), clock_text(eta).c_str());
        }
        std::fputs(line, stderr);
        drawn_ = true;
    }

    // Clears the bar (a terminal) so the next output starts on a clean line.
    void finish() {
        if (drawn_ && tty_) std::fputs("\r\033[K", stderr);
        drawn_ = false;
    }

   private:
    using clock = std::chrono::steady_clock;
    static double seconds(clock::duration d) { return std::chrono::duration<double>(d).count(); }
    static std::string clock_text(double s) {
        char b[32];
        const long t = long(s + 0.5);
        if (t >= 3600)
            std::snprintf(b, sizeof b, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
        else
            std::snprintf(b, sizeof b, "%ld:%02ld", t / 60, t % 60);
        return b;
    }

    std::string title_;
    bool enabled_, tty_, drawn_ = false;
    clock::time_point start_, last_;
};

}  // namespace cli
