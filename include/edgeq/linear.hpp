// edgeq::linear: a quantized weight matrix behind a virtual interface, for code that picks the
// scheme at run time (an engine loading a model, the edgeq CLI). The static API
// (edgeq::quantize<S>, edgeq::gemv on a qview) stays the fast path for code that knows its
// scheme; linear adds one virtual call per kernel call, never per element.
//
//     std::unique_ptr<edgeq::linear> l = edgeq::make_linear<MyScheme>(w);   // or registry::make_linear(name, w)
//     l->gemv(x, y);                       // y = W x, on the default thread pool
//     l->scheme_name();                    // "int4-g128"
//
// Activations: a quantized linear multiplies int8 activations by default, as llama.cpp does
// (x is quantized per call to the format's activation block, activation_of<F>: 32-value blocks,
// or Q8_K for the k-quants), because the float path is compute-bound and streams weights at a
// fraction of the memory bandwidth. gemv and gemm then give the same numbers for the same row of
// x. set_activations(activations::f32) selects the float path (exact products of the decoded
// weights); dense linears always take it.
//
// linear_of<Scheme, Backend> is the implementation: it owns a qmatrix<format_of<Scheme>> and
// runs the kernels for Backend (backend::best unless given). The kernels live in a base shared
// by every scheme of one format (rtn<> and rtn<clip_search> store the same thing), so a
// registry that lists both algorithms compiles each kernel once. Host only, no Hana.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "algo/ggml/quantize.hpp"
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

// How a linear multiplies: float activations, or activations quantized to int8 blocks.
enum class activations { f32, int8 };

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
    // The blob itself, storage_bytes() of them: for the dense and llama.cpp types exactly a GGUF
    // tensor's data, for the grouped formats an EDGEQ_GROUPED blob (docs/formats.md). Writers
    // copy it, so quantized weights are saved as computed, never decoded and quantized again.
    virtual const std::uint8_t* storage_data() const = 0;
    // Average bits per weight of the format at this matrix's row length (no alignment padding).
    virtual double bits_per_weight() const = 0;
    // The canonical name (scheme_name.hpp): "int4-g128", "rtn-clip-int3-g64-asym".
    virtual std::string scheme_name() const = 0;
    // The host backend the kernels run on: "avx2", "neon_a57", "simd", "scalar".
    virtual const char* backend_name() const = 0;

    // Whether the int8 activation path exists (quantized formats) and which path runs.
    virtual bool has_int8_path() const { return false; }
    activations activation_mode() const { return mode_; }
    // Throws edgeq::error when int8 is asked of a linear without an int8 path.
    void set_activations(activations a) {
        if (a == activations::int8 && !has_int8_path())
            throw error("linear::set_activations: " + scheme_name() + " has no int8 activation path");
        mode_ = a;
    }

    // y = W x: x has cols() floats, y rows().
    void gemv(const float* x, float* y, thread_pool& pool = default_pool()) const { do_gemv(x, y, pool); }
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
    virtual void do_gemm(matrix_view<const float> x, matrix_view<float> y, thread_pool& pool) const = 0;
    virtual void do_dequantize_row(std::size_t r, float* out) const = 0;

    activations mode_ = activations::f32;
};

namespace detail {

// Everything that depends on the format and backend only.
template <class Format, class Backend>
class linear_format : public linear {
   public:
    using format = Format;
    using backend_type = Backend;

    using act_block = typename activation_of<Format>::type;

    explicit linear_format(qmatrix<Format> m) : m_(std::move(m)), view_(m_.view()) { this->mode_ = activations::int8; }

    std::size_t rows() const override { return m_.rows(); }
    std::size_t cols() const override { return m_.cols(); }
    std::size_t storage_bytes() const override { return m_.storage_bytes(); }
    const std::uint8_t* storage_data() const override { return m_.blob().data(); }
    double bits_per_weight() const override { return Format::bits_per_weight(long(m_.cols())); }
    const char* backend_name() const override { return Backend::name(); }
    bool has_int8_path() const override { return true; }

    const qmatrix<Format>& matrix() const { return m_; }
    const qview<Format>& view() const { return view_; }

   protected:
    void do_gemv(const float* x, float* y, thread_pool& pool) const override {
        if (this->mode_ == activations::f32) return edgeq::gemv<Backend>(view_, x, y, pool);
        edgeq::gemv_q8<Backend>(view_, quantized(x, 1), y, pool);
    }
    void do_gemm(matrix_view<const float> x, matrix_view<float> y, thread_pool& pool) const override {
        if (this->mode_ == activations::f32) return edgeq::gemm<Backend>(view_, x, y, pool);
        // Row by row the same products as gemv, so a prompt and a decode agree bit for bit.
        const act_block* xq = quantized(x.data, x.rows, x.stride);
        edgeq::gemm_q8<Backend>(view_, xq, x.rows, y, pool);
    }
    void do_dequantize_row(std::size_t r, float* out) const override { edgeq::dequantize_row<Backend>(view_, r, out); }

   private:
    // n rows of x (stride floats apart) as activation blocks, in a buffer of the calling thread
    // that lives until its next call (the pool's workers only read it while the caller waits).
    const act_block* quantized(const float* x, std::size_t n, std::size_t stride = 0) const {
        static thread_local std::vector<act_block> buf;
        const std::size_t per_row = view_.cols / activation_block_weights<Format>();
        if (buf.size() < n * per_row) buf.resize(n * per_row);
        for (std::size_t t = 0; t < n; ++t) quantize_activations(x + t * stride, view_.cols, buf.data() + t * per_row);
        return buf.data();
    }

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
    // The format's quantizer, not quantize<Scheme>: schemes that share a format share its code.
    return std::unique_ptr<linear>(
        new linear_of<Scheme, Backend>(format_quantizer<format_of<Scheme>>::run(w, opt, default_pool())));
}

}  // namespace edgeq
