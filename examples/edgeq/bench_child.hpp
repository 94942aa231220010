// edgeq bench runs every measurement as a child process of the same binary (peak resident
// memory is per process): posix_spawn, no shell; the child's stdout (its --json) and stderr
// (its log) go to files. Ctrl-C sets a flag and is passed on to the running child.
#pragma once
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <iterator>
#include <string>
#include <vector>

#include <edgeq/core/error.hpp>

extern char** environ;

namespace bench {

// Set by SIGINT / SIGTERM; the running child gets the signal too.
inline volatile sig_atomic_t& interrupted() {
    static volatile sig_atomic_t flag = 0;
    return flag;
}
inline volatile pid_t& running_child() {
    static volatile pid_t pid = 0;
    return pid;
}

extern "C" inline void on_interrupt(int sig) {
    interrupted() = 1;
    const pid_t c = running_child();
    if (c > 0) kill(c, sig);  // a terminal's Ctrl-C reaches it anyway; kill -INT of the parent does not
}

// Installs the handler for the life of the object (no SA_RESTART: a sleep returns early).
class interrupt_guard {
   public:
    interrupt_guard() {
        struct sigaction sa;
        std::memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_interrupt;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGINT, &sa, &old_int_);
        sigaction(SIGTERM, &sa, &old_term_);
    }
    ~interrupt_guard() {
        sigaction(SIGINT, &old_int_, nullptr);
        sigaction(SIGTERM, &old_term_, nullptr);
    }
    interrupt_guard(const interrupt_guard&) = delete;
    interrupt_guard& operator=(const interrupt_guard&) = delete;

   private:
    struct sigaction old_int_, old_term_;
};

// This executable, for the children (Linux: /proc/self/exe; elsewhere argv[0] is the fallback).
inline std::string self_exe(const char* argv0) {
    char buf[4096];
    const ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
    if (n > 0) return std::string(buf, std::size_t(n));
    return argv0 ? argv0 : "edgeq";
}

inline std::string read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// The last non-empty line of a log (progress bars redraw with '\r'), at most 400 characters.
inline std::string last_line(const std::string& path) {
    std::ifstream in(path, std::ios::binary | std::ios::ate);
    if (!in) return "";
    const std::streamoff size = in.tellg();
    const std::streamoff from = size > 2048 ? size - 2048 : 0;
    in.seekg(from);
    std::string tail((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::string line;
    std::size_t end = tail.size();
    while (end > 0) {
        const std::size_t start = tail.find_last_of("\r\n", end - 1);
        const std::size_t b = start == std::string::npos ? 0 : start + 1;
        line = tail.substr(b, end - b);
        if (line.find_first_not_of(" \t\033[K") != std::string::npos) break;
        line.clear();
        if (start == std::string::npos) break;
        end = start;
    }
    // Terminal escapes (a child's bar when stderr was a terminal) are not wanted in a table.
    std::string clean;
    for (std::size_t i = 0; i < line.size(); ++i) {
        if (line[i] == '\033') {
            while (i < line.size() && !(line[i] >= 'A' && line[i] <= 'Z') && !(line[i] >= 'a' && line[i] <= 'z')) ++i;
            continue;
        }
        clean += line[i];
    }
    return clean.size() > 400 ? clean.substr(0, 400) + "..." : clean;
}

struct child_result {
    int exit_code = -1;       // -1: killed by a signal (signal_number says which)
    int signal_number = 0;
    double peak_rss_bytes = 0;  // the child's ru_maxrss
    double seconds = 0;
    std::string out;          // its stdout
};

// Runs exe args... with stdout to out_path and stderr to log_path; calls tick about five times a
// second while it runs. Throws edgeq::error if it cannot be started.
inline child_result run_child(const std::string& exe, const std::vector<std::string>& args, const std::string& out_path,
                              const std::string& log_path, const std::function<void()>& tick) {
    std::vector<std::string> all;
    all.push_back(exe);
    all.insert(all.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (std::string& s : all) argv.push_back(&s[0]);
    argv.push_back(nullptr);

    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_addopen(&fa, 2, log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    pid_t pid = 0;
    const auto t0 = std::chrono::steady_clock::now();
    const int rc = posix_spawn(&pid, exe.c_str(), &fa, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) throw edgeq::error("bench: cannot start " + exe + ": " + std::strerror(rc));
    running_child() = pid;
    if (interrupted()) kill(pid, SIGINT);  // Ctrl-C came between two children

    child_result r;
    int status = 0;
    struct rusage ru;
    std::memset(&ru, 0, sizeof ru);
    for (;;) {
        const pid_t w = wait4(pid, &status, WNOHANG, &ru);
        if (w == pid) break;
        if (w < 0 && errno != EINTR) throw edgeq::error(std::string("bench: waiting for a child: ") + std::strerror(errno));
        if (tick) tick();
        usleep(200000);
    }
    running_child() = 0;
    r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
#ifdef __APPLE__
    r.peak_rss_bytes = double(ru.ru_maxrss);
#else
    r.peak_rss_bytes = double(ru.ru_maxrss) * 1024.0;
#endif
    if (WIFEXITED(status)) r.exit_code = WEXITSTATUS(status);
    else if (WIFSIGNALED(status)) r.signal_number = WTERMSIG(status);
    r.out = read_file(out_path);
    return r;
}

// Where a program is on PATH; empty when it is not.
inline std::string find_program(const std::string& name) {
    const char* path = std::getenv("PATH");
    std::string p = path ? path : "/usr/bin:/bin";
    std::size_t b = 0;
    while (b <= p.size()) {
        std::size_t e = p.find(':', b);
        if (e == std::string::npos) e = p.size();
        const std::string dir = e > b ? p.substr(b, e - b) : ".";
        const std::string f = dir + "/" + name;
        struct stat st;
        if (stat(f.c_str(), &st) == 0 && S_ISREG(st.st_mode) && access(f.c_str(), X_OK) == 0) return f;
        b = e + 1;
    }
    return "";
}

}  // namespace bench
