// A byte buffer aligned to 64 bytes (a cache line, and enough for any SIMD load), host only.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <new>
#include <utility>

namespace edgeq {

class aligned_buffer {
   public:
    aligned_buffer() = default;
    explicit aligned_buffer(std::size_t n) : size_(n) {
        if (!n) return;
        raw_ = static_cast<std::uint8_t*>(::operator new(n + 64));
        data_ = raw_ + (64 - reinterpret_cast<std::uintptr_t>(raw_) % 64) % 64;
        std::memset(data_, 0, n);
    }
    aligned_buffer(const aligned_buffer&) = delete;
    aligned_buffer& operator=(const aligned_buffer&) = delete;
    aligned_buffer(aligned_buffer&& o) noexcept { swap(o); }
    aligned_buffer& operator=(aligned_buffer&& o) noexcept {
        aligned_buffer t(std::move(o));
        swap(t);
        return *this;
    }
    ~aligned_buffer() { ::operator delete(raw_); }

    std::uint8_t* data() { return data_; }
    const std::uint8_t* data() const { return data_; }
    std::size_t size() const { return size_; }

   private:
    void swap(aligned_buffer& o) noexcept {
        std::swap(data_, o.data_);
        std::swap(raw_, o.raw_);
        std::swap(size_, o.size_);
    }
    std::uint8_t* data_ = nullptr;
    std::uint8_t* raw_ = nullptr;  // what operator new returned; data_ is its first 64-byte boundary
    std::size_t size_ = 0;
};

}  // namespace edgeq
