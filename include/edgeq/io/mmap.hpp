// Files in and out, host only (POSIX).
//
//   mapped_file     a read-only memory mapping of a whole file (RAII). A missing, unreadable,
//                   empty or non-regular file is an edgeq::error naming the path.
//   atomic_writer   writes `path` as a whole or not at all: the bytes go to `path.tmp.XXXXXX`
//                   in the same directory; commit() fsyncs, renames over `path` and fsyncs the
//                   directory. Any error (a full disk included, reported as such) removes the
//                   temporary file and throws; so does destruction without commit().
#pragma once
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../core/error.hpp"

namespace edgeq {
namespace io {

namespace detail {
inline std::string errno_text(int e) {
    if (e == ENOSPC) return "the disk is full (no space left on device)";
    if (e == EDQUOT) return "the disk quota is exceeded";
    return std::strerror(e);
}
}  // namespace detail

class mapped_file {
   public:
    mapped_file() = default;
    explicit mapped_file(const std::string& path) : path_(path) {
        const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);  // a FIFO must not block
        if (fd < 0) {
            const int e = errno;
            throw error("cannot open '" + path + "': " + (e == ENOENT ? std::string("no such file") : detail::errno_text(e)));
        }
        struct stat st;
        if (::fstat(fd, &st) != 0) {
            const int e = errno;
            ::close(fd);
            throw error("cannot stat '" + path + "': " + detail::errno_text(e));
        }
        if (!S_ISREG(st.st_mode)) {
            ::close(fd);
            throw error("'" + path + "' is not a regular file");
        }
        if (st.st_size <= 0) {
            ::close(fd);
            throw error("'" + path + "' is empty");
        }
        size_ = std::size_t(st.st_size);
        void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
        const int e = errno;
        ::close(fd);  // the mapping keeps the file alive
        if (p == MAP_FAILED) {
            size_ = 0;
            throw error("cannot map '" + path + "': " + detail::errno_text(e));
        }
        data_ = static_cast<const std::uint8_t*>(p);
    }
    mapped_file(const mapped_file&) = delete;
    mapped_file& operator=(const mapped_file&) = delete;
    mapped_file(mapped_file&& o) noexcept { swap(o); }
    mapped_file& operator=(mapped_file&& o) noexcept {
        mapped_file t(std::move(o));
        swap(t);
        return *this;
    }
    ~mapped_file() {
        if (data_) ::munmap(const_cast<std::uint8_t*>(data_), size_);
    }

    const std::uint8_t* data() const { return data_; }
    std::size_t size() const { return size_; }
    const std::string& path() const { return path_; }

    // Drops the pages wholly inside [p, p + n) from memory once their bytes have been copied, so
    // a loader that copies tensor by tensor holds about one copy of the weights, not two. The
    // bytes stay readable (the kernel reads them from the file again if touched).
    void release(const std::uint8_t* p, std::size_t n) const {
        const std::uintptr_t page = std::uintptr_t(::sysconf(_SC_PAGESIZE));
        const std::uintptr_t b = (std::uintptr_t(p) + page - 1) / page * page, e = (std::uintptr_t(p) + n) / page * page;
        if (p >= data_ && p + n <= data_ + size_ && e > b) ::madvise(reinterpret_cast<void*>(b), e - b, MADV_DONTNEED);
    }

   private:
    void swap(mapped_file& o) noexcept {
        std::swap(data_, o.data_);
        std::swap(size_, o.size_);
        std::swap(path_, o.path_);
    }
    const std::uint8_t* data_ = nullptr;
    std::size_t size_ = 0;
    std::string path_;
};

// Reads a small text file (a JSON config) into a string.
inline std::string read_text_file(const std::string& path) {
    const mapped_file f(path);
    return std::string(reinterpret_cast<const char*>(f.data()), f.size());
}

inline bool file_exists(const std::string& path) {
    struct stat st;
    return ::stat(path.c_str(), &st) == 0;
}

inline bool is_directory(const std::string& path) {
    struct stat st;
    return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

class atomic_writer {
   public:
    explicit atomic_writer(const std::string& path) : path_(path) {
        if (path.empty()) throw error("cannot write a file with an empty name");
        std::vector<char> tmpl(path.begin(), path.end());
        const char suffix[] = ".tmp.XXXXXX";
        tmpl.insert(tmpl.end(), suffix, suffix + sizeof suffix);  // with the terminating 0
        fd_ = ::mkstemp(tmpl.data());
        if (fd_ < 0) {
            const int e = errno;
            throw error("cannot create a temporary file next to '" + path + "': " + detail::errno_text(e));
        }
        tmp_ = tmpl.data();
        ::fchmod(fd_, 0644);
    }
    atomic_writer(const atomic_writer&) = delete;
    atomic_writer& operator=(const atomic_writer&) = delete;
    ~atomic_writer() { abandon(); }

    void write(const void* data, std::size_t n) {
        if (fd_ < 0) throw error("writing '" + path_ + "' after it was committed or abandoned");
        const char* p = static_cast<const char*>(data);
        while (n) {
            const std::size_t chunk = n < (std::size_t(1) << 30) ? n : (std::size_t(1) << 30);
            const ssize_t w = ::write(fd_, p, chunk);
            if (w < 0 && errno == EINTR) continue;
            if (w <= 0) fail("cannot write", w < 0 ? errno : ENOSPC);
            p += w;
            n -= std::size_t(w);
            written_ += std::uint64_t(w);
        }
    }
    void write_zeros(std::size_t n) {
        static const char zeros[256] = {};
        while (n) {
            const std::size_t k = n < sizeof zeros ? n : sizeof zeros;
            write(zeros, k);
            n -= k;
        }
    }
    std::uint64_t written() const { return written_; }
    const std::string& temp_path() const { return tmp_; }

    // Flush to disk and move the file into place.
    void commit() {
        if (fd_ < 0) throw error("'" + path_ + "' was already committed or abandoned");
        if (::fsync(fd_) != 0) fail("cannot flush", errno);
        if (::close(fd_) != 0) {
            fd_ = -1;
            fail("cannot close", errno);
        }
        fd_ = -1;
        if (::rename(tmp_.c_str(), path_.c_str()) != 0) fail("cannot rename the temporary file onto", errno);
        tmp_.clear();
        // Make the rename durable (best effort: some file systems refuse fsync on directories).
        const std::size_t slash = path_.rfind('/');
        const std::string dir = slash == std::string::npos ? "." : (slash == 0 ? "/" : path_.substr(0, slash));
        const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0) {
            ::fsync(dfd);
            ::close(dfd);
        }
    }

    // Drop the temporary file (what the destructor does when commit() was not reached).
    void abandon() noexcept {
        if (fd_ >= 0) ::close(fd_);
        fd_ = -1;
        if (!tmp_.empty()) ::unlink(tmp_.c_str());
        tmp_.clear();
    }

   private:
    [[noreturn]] void fail(const char* what, int e) {
        abandon();
        throw error(std::string(what) + " '" + path_ + "': " + detail::errno_text(e));
    }
    std::string path_, tmp_;
    int fd_ = -1;
    std::uint64_t written_ = 0;
};

}  // namespace io
}  // namespace edgeq
