// edgeq::linear: a quantized weight matrix behind a virtual interface, for code that picks the
// scheme at run time (an engine loading a model, the edgeq CLI). The static API
// (edgeq::quantize<S>, edgeq::gemv on a qview) stays the fast path for code that knows its
// scheme; linear adds one virtual call per kernel call, never per element.
//
//     std::unique_ptr<edgeq::linear> l = edgeq::make_linear<MyScheme>(w);   // or registry::make_linear(name, w)
//     l->gemv(x, y);                       // y = W x, on the default thread pool
//     l->scheme_name();                    // "int4-g128"
//
// linear_of<Scheme, Backend> is the implementation: it owns a qmatrix<format_of<Scheme>> and
// runs the kernels for Backend (backend::best unless given). The kernels live in a base shared
// by every scheme of one format (rtn<> and rtn<clip_search> store the same thing), so a
// registry that lists both algorithms compiles each kernel once. Host only, no Hana.
#pragma once
#include <cstddef>
#include <memory>
#include <string>
#include <utility>

#include "algo/rtn.hpp"
#include "core/error.hpp"
#include "core/matrix_view.hpp"
#include "core/thread_pool.hpp"
#include "format/qmatrix.hpp"
#include "kernel/activation.hpp"
#include "kernels.hpp"
#include "scheme.hpp"
#include "scheme_name.hpp"

namespace edgeq {

class linear {
   public:
    virtual ~linear() = default;
    linear() = default;
    linear(const linear&) = delete;
    linear& operator=(const linear&) = delete;

    virtual std::size_t rows() const = 0;
    virtual std::size_t cols() const = 0;
    // Bytes of the stored blob (codes, scales, zero points, with their 64-byte alignment).
    virtual std::size_t storage_bytes() const = 0;
    // Average bits per weight of the format at this matrix's row length (no alignment padding).
    virtual double bits_per_weight() const = 0;
    // The canonical name (scheme_name.hpp): "int4-g128", "rtn-clip-int3-g64-asym".
    virtual std::string scheme_name() const = 0;
    // The host backend the kernels run on: "avx2", "neon_a57", "simd", "scalar".
    virtual const char* backend_name() const = 0;

    // y = W x: x has cols() floats, y rows().
    void gemv(const float* x, float* y, thread_pool& pool = default_pool()) const { do_gemv(x, y, pool); }
    // y = W x with x quantized to int8 blocks: cols() / 32 of them (quantize_activations).
    void gemv_q8(const q8_block* x, float* y, thread_pool& pool = default_pool()) const { do_gemv_q8(x, y, pool); }
    // Y = X W^T: X is tokens x cols(), Y tokens x rows(). Throws edgeq::error if shapes differ.
    void gemm(matrix_view<const float> x, matrix_view<float> y, thread_pool& pool = default_pool()) const {
        if (x.cols != cols() || y.cols != rows() || y.rows != x.rows)
            throw error("linear::gemm: X is " + std::to_string(x.rows) + " x " + std::to_string(x.cols) + " and Y " +
                        std::to_string(y.rows) + " x " + std::to_string(y.cols) + ", but W (" + scheme_name() + ") is " +
                        std::to_string(rows()) + " x " + std::to_string(cols()));
        do_gemm(x, y, pool);
    }
    // The cols() weights of row r as stored (decoded). Throws edgeq::error if r >= rows().
    void dequantize_row(std::size_t r, float* out) const {
        if (r >= rows())
            throw error("linear::dequantize_row: row " + std::to_string(r) + " of a matrix with " + std::to_string(rows()) +
                        " rows");
        do_dequantize_row(r, out);
    }

   protected:
    // Non-virtual public functions with default arguments, virtual protected ones without:
    // default arguments of virtual functions bind statically, so they are kept out of them.
    virtual void do_gemv(const float* x, float* y, thread_pool& pool) const = 0;
    virtual void do_gemv_q8(const q8_block* x, float* y, thread_pool& pool) const = 0;
    virtual void do_gemm(matrix_view<const float> x, matrix_view<float> y, thread_pool& pool) const = 0;
    virtual void do_dequantize_row(std::size_t r, float* out) const = 0;
};

namespace detail {

// Everything that depends on the format and backend only.
template <class Format, class Backend>
class linear_format : public linear {
   public:
    using format = Format;
    using backend_type = Backend;

    explicit linear_format(qmatrix<Format> m) : m_(std::move(m)), view_(m_.view()) {}

    std::size_t rows() const override { return m_.rows(); }
    std::size_t cols() const override { return m_.cols(); }
    std::size_t storage_bytes() const override { return m_.storage_bytes(); }
    double bits_per_weight() const override { return Format::bits_per_weight(long(m_.cols())); }
    const char* backend_name() const override { return Backend::name(); }

    const qmatrix<Format>& matrix() const { return m_; }
    const qview<Format>& view() const { return view_; }

   protected:
    void do_gemv(const float* x, float* y, thread_pool& pool) const override { edgeq::gemv<Backend>(view_, x, y, pool); }
    void do_gemv_q8(const q8_block* x, float* y, thread_pool& pool) const override {
        edgeq::gemv_q8<Backend>(view_, x, y, pool);
    }
    void do_gemm(matrix_view<const float> x, matrix_view<float> y, thread_pool& pool) const override {
        edgeq::gemm<Backend>(view_, x, y, pool);
    }
    void do_dequantize_row(std::size_t r, float* out) const override { edgeq::dequantize_row<Backend>(view_, r, out); }

   private:
    qmatrix<Format> m_;
    qview<Format> view_;  // the blob does not move with m_ (aligned_buffer owns it on the heap)
};

}  // namespace detail

template <class Scheme, class Backend = backend::best>
class linear_of final : public detail::linear_format<format_of<Scheme>, Backend> {
    static_assert(is_scheme<Scheme>::value, "edgeq::linear_of<S>: S must be an edgeq::scheme<...>");

   public:
    using scheme = Scheme;
    explicit linear_of(qmatrix<format_of<Scheme>> m) : detail::linear_format<format_of<Scheme>, Backend>(std::move(m)) {}
    std::string scheme_name() const override { return name_of<Scheme>(); }
};

// Quantizes w with Scheme (its algorithm's defaults unless opt says otherwise).
template <class Scheme, class Backend = backend::best>
std::unique_ptr<linear> make_linear(matrix_view<const float> w, const quant_options& opt = default_options<Scheme>()) {
    static_assert(is_scheme<Scheme>::value, "edgeq::make_linear<S>: S must be an edgeq::scheme<...>");
    // quantize_format, not quantize<Scheme>: schemes that share a format share its quantizer.
    return std::unique_ptr<linear>(new linear_of<Scheme, Backend>(quantize_format<format_of<Scheme>>(w, opt)));
}

}  // namespace edgeq
