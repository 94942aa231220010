// edgeq bench's progress display: which scheme, which stage, how long it has run, the child's
// own last progress line, and an ETA for the whole run from the average time of each kind of
// stage so far. On a terminal one line is redrawn in place; otherwise each stage start is one
// line, so logs stay readable.
#pragma once
#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdio>
#include <map>
#include <string>
#include <utility>

#include "bench_child.hpp"

namespace bench {

class progress {
   public:
    // remaining[kind]: how many stages of each kind the run holds (a cached one counts as done).
    explicit progress(std::map<std::string, std::size_t> remaining)
        : remaining_(std::move(remaining)), tty_(isatty(2) != 0), start_(clock::now()), stage_start_(start_), last_draw_(start_) {}

    void begin(std::size_t index, std::size_t count, const std::string& scheme, const std::string& kind, const std::string& what,
               const std::string& log) {
        label_ = "[" + std::to_string(index + 1) + "/" + std::to_string(count) + "] " + scheme + ": " + what;
        kind_ = kind;
        log_ = log;
        stage_start_ = clock::now();
        if (!tty_) std::fprintf(stderr, "%s (elapsed %s%s)\n", label_.c_str(), clock_text(since(start_)).c_str(), eta_text().c_str());
        else draw();
    }

    // Called while a child runs.
    void tick() {
        if (!tty_ || since(last_draw_) < 0.25) return;
        draw();
    }

    // The stage ended: ran (its time joins the averages) or was cached.
    void end(bool ran) {
        if (ran) {
            stats& s = done_[kind_];
            s.seconds += since(stage_start_);
            s.count += 1;
        }
        if (remaining_[kind_] > 0) --remaining_[kind_];
        kind_.clear();
    }
    void skip(const std::string& kind, std::size_t n = 1) { remaining_[kind] -= std::min(remaining_[kind], n); }

    // A line that stays (a scheme's summary).
    void line(const std::string& text) {
        clear();
        std::fprintf(stderr, "%s\n", text.c_str());
    }
    void clear() {
        if (tty_ && drawn_) std::fputs("\r\033[K", stderr);
        drawn_ = false;
    }
    double elapsed() const { return since(start_); }

    static std::string clock_text(double s) {
        char b[32];
        const long t = long(s + 0.5);
        if (t >= 3600) std::snprintf(b, sizeof b, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
        else std::snprintf(b, sizeof b, "%ld:%02ld", t / 60, t % 60);
        return b;
    }

   private:
    using clock = std::chrono::steady_clock;
    struct stats {
        double seconds = 0;
        std::size_t count = 0;
    };
    static double since(clock::time_point t) { return std::chrono::duration<double>(clock::now() - t).count(); }

    // ", ETA 12:30": the remaining stages at their kind's average (">" when a kind has no
    // measurement yet, so the estimate is a lower bound).
    std::string eta_text() const {
        double eta = 0;
        bool lower = false, any = false;
        for (const auto& k : remaining_) {
            if (k.second == 0) continue;
            auto d = done_.find(k.first);
            if (d == done_.end() || d->second.count == 0) {
                lower = true;
                continue;
            }
            double n = double(k.second);
            double avg = d->second.seconds / double(d->second.count);
            if (k.first == kind_) eta += std::max(0.0, avg - since(stage_start_)), n -= 1;  // the current one
            eta += n * avg;
            any = true;
        }
        if (!any) return "";
        return std::string(", ETA ") + (lower ? ">" : "~") + clock_text(eta);
    }

    void draw() {
        last_draw_ = clock::now();
        std::string child = log_.empty() ? "" : last_line(log_);
        std::string s = label_ + " " + clock_text(since(stage_start_)) + (child.empty() ? "" : " | " + child) + " | total " +
                        clock_text(since(start_)) + eta_text();
        struct winsize w;
        std::size_t cols = 100;
        if (ioctl(2, TIOCGWINSZ, &w) == 0 && w.ws_col > 20) cols = w.ws_col;
        if (s.size() >= cols) s = s.substr(0, cols - 1);
        std::fprintf(stderr, "\r%s\033[K", s.c_str());
        std::fflush(stderr);
        drawn_ = true;
    }

    std::map<std::string, std::size_t> remaining_;
    std::map<std::string, stats> done_;
    bool tty_, drawn_ = false;
    clock::time_point start_, stage_start_, last_draw_;
    std::string label_, kind_, log_;
};

}  // namespace bench
