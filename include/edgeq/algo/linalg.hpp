// Dense building blocks of the calibration algorithms (the Hessian accumulator, GPTQ, AWQ):
//   gram_lower_add   C += X^T X (lower), float products in 256-row slices summed into float64
//   gemm_add_f32     C += A B in float (GPTQ's lazy-batch update)
//   syrk_lower_sub   C -= A A^T (lower) in float64 (the Cholesky trailing update)
//   cholesky_lower   blocked right-looking Cholesky factor
// all on the packed kernel (kernel/packed_gemm.hpp), and rank_update, a cache-blocked threaded
// C += alpha A B with a 4 x 64-byte register tile (GCC/clang vector extensions), kept for
// callers with strided operands. Every element of C is summed in k order, with no reduction
// across lanes, so no -ffast-math is needed and no result depends on the thread count.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstring>
#include <vector>

#include "../core/matrix_view.hpp"
#include "../core/thread_pool.hpp"
#include "../kernel/backends.hpp"
#include "../kernel/packed_gemm.hpp"

namespace edgeq {
namespace linalg {

// A operand of a rank update: element (i, m) at a[i * row_stride + m * k_stride], so the same
// kernel reads A or A^T in place.
template <class T>
struct strided {
    const T* a;
    std::size_t row_stride, k_stride;
    T operator()(std::size_t i, std::size_t m) const { return a[i * row_stride + m * k_stride]; }
};

namespace detail {

// Four rows of C by 64 bytes (8 doubles or 16 floats): two 32-byte vectors per row.
template <class T>
struct tile_shape {
    static constexpr std::size_t mr = 4, nr = 64 / sizeof(T);
};

// c[i][j] += alpha * sum_m ap[m][i] bp[m][j] for i < mr, j < nr, from packed operands (ap: K x 4,
// bp: K x NR, both contiguous, zero-padded), so the loop reads memory sequentially.
#if defined(__GNUC__)
// GCC and clang: vector extensions, which compile to AVX on x86 and to NEON pairs on ARM.
template <class T>
inline void tile_kernel(std::size_t K, const T* ap, const T* bp, T* c, std::size_t ldc, T alpha, std::size_t mr,
                        std::size_t nr) {
    constexpr std::size_t half = tile_shape<T>::nr / 2;
    typedef T vec __attribute__((vector_size(32)));
    // Named accumulators: an array of vectors would live on the stack.
    vec c00 = {}, c01 = {}, c10 = {}, c11 = {}, c20 = {}, c21 = {}, c30 = {}, c31 = {};
    for (std::size_t m = 0; m < K; ++m, ap += 4, bp += 2 * half) {
        vec b0, b1;
        std::memcpy(&b0, bp, sizeof b0);
        std::memcpy(&b1, bp + half, sizeof b1);
        c00 += ap[0] * b0, c01 += ap[0] * b1;
        c10 += ap[1] * b0, c11 += ap[1] * b1;
        c20 += ap[2] * b0, c21 += ap[2] * b1;
        c30 += ap[3] * b0, c31 += ap[3] * b1;
    }
    const vec* acc[4][2] = {{&c00, &c01}, {&c10, &c11}, {&c20, &c21}, {&c30, &c31}};
    for (std::size_t i = 0; i < mr; ++i)
        for (std::size_t j = 0; j < nr; ++j) c[i * ldc + j] += alpha * (*acc[i][j / half])[j % half];
}
#else
template <class T>
inline void tile_kernel(std::size_t K, const T* ap, const T* bp, T* c, std::size_t ldc, T alpha, std::size_t mr,
                        std::size_t nr) {
    constexpr std::size_t NR = tile_shape<T>::nr;
    T acc[4][NR] = {};
    for (std::size_t m = 0; m < K; ++m, ap += 4, bp += NR)
        for (std::size_t i = 0; i < 4; ++i)
            for (std::size_t j = 0; j < NR; ++j) acc[i][j] += ap[i] * bp[j];
    for (std::size_t i = 0; i < mr; ++i)
        for (std::size_t j = 0; j < nr; ++j) c[i * ldc + j] += alpha * acc[i][j];
}
#endif

}  // namespace detail

// C (M x N, row stride ldc) += alpha * A B with A (M x K) strided and B (K x N, row stride ldb).
// lower: only tiles that reach j <= i are computed (C is the lower triangle of a square matrix;
// entries just above the diagonal inside those tiles are scratch). Rows are split over the pool;
// a task packs its rows of A and, strip by strip, 256 columns of B into contiguous buffers (a
// power-of-two row stride would otherwise map every row of a strip onto the same cache sets),
// k in slices of 128 so that a packed strip stays in L2.
template <class T>
void rank_update(std::size_t M, std::size_t N, std::size_t K, const strided<T>& A, const T* b, std::size_t ldb, T* c,
                 std::size_t ldc, T alpha, bool lower, thread_pool& pool) {
    if (M == 0 || N == 0 || K == 0) return;
    constexpr std::size_t MR = detail::tile_shape<T>::mr, NR = detail::tile_shape<T>::nr;
    constexpr std::size_t rows_per_task = 128, kc = 128, strip = 256;
    const std::size_t tasks = (M + rows_per_task - 1) / rows_per_task;
    pool.run(tasks, [&](std::size_t t) {
        // Lower-triangular work grows with the row: hand out the heavy bottom tasks first.
        const std::size_t task = lower ? tasks - 1 - t : t;
        const std::size_t r0 = task * rows_per_task, r1 = std::min(M, r0 + rows_per_task);
        const std::size_t n_end = lower ? std::min(N, r1) : N;
        std::vector<T> ap(rows_per_task * kc), bp(strip * kc);
        for (std::size_t k0 = 0; k0 < K; k0 += kc) {
            const std::size_t k1 = std::min(K, k0 + kc), kn = k1 - k0;
            // A: per tile of four rows, K x 4.
            for (std::size_t i0 = r0; i0 < r1; i0 += MR) {
                T* p = ap.data() + (i0 - r0) * kn;
                for (std::size_t m = k0; m < k1; ++m)
                    for (std::size_t i = 0; i < MR; ++i) *p++ = i0 + i < r1 ? A(i0 + i, m) : T(0);
            }
            for (std::size_t s0 = 0; s0 < n_end; s0 += strip) {
                const std::size_t s1 = std::min(n_end, s0 + strip);
                // B: per tile of NR columns, K x NR.
                for (std::size_t j0 = s0; j0 < s1; j0 += NR) {
                    T* p = bp.data() + (j0 - s0) * kn;
                    for (std::size_t m = k0; m < k1; ++m)
                        for (std::size_t j = 0; j < NR; ++j) *p++ = j0 + j < N ? b[m * ldb + j0 + j] : T(0);
                }
                for (std::size_t i0 = r0; i0 < r1; i0 += MR) {
                    const std::size_t mr = std::min(MR, r1 - i0);
                    const std::size_t j_end = lower ? std::min(s1, i0 + mr) : s1;
                    for (std::size_t j0 = s0; j0 < j_end; j0 += NR)
                        detail::tile_kernel(kn, ap.data() + (i0 - r0) * kn, bp.data() + (j0 - s0) * kn,
                                            c + i0 * ldc + j0, ldc, alpha, mr, std::min(NR, N - j0));
                }
            }
        }
    });
}

namespace detail {
// Rows of C per task for the packed kernel: every task packs its own copy of B, so tasks are
// as tall as four per thread allows (whole A blocks of packed::mc rows), not one A block each.
inline std::size_t task_rows(std::size_t m, const thread_pool& pool) {
    const std::size_t mc = kernel::packed::mc, parts = 4 * std::size_t(pool.size());
    return std::max<std::size_t>(1, (m + parts - 1) / parts + mc - 1) / mc * mc;
}
}  // namespace detail

// C (M x N, row stride ldc) += A B in float, A (M x K, row stride lda), B (K x N, row stride ldb),
// on the packed kernel (kernel/packed_gemm.hpp, 6 x 16 register tiles on AVX2). Rows of C are
// split over the pool (task_rows); each element's sum is the same whatever the split.
inline void gemm_add_f32(std::size_t M, std::size_t N, std::size_t K, const float* a, std::size_t lda, const float* b,
                         std::size_t ldb, float* c, std::size_t ldc, thread_pool& pool) {
    namespace pk = kernel::packed;
    using tag = backend::best;
    constexpr std::size_t nr = pk::tile_nr<float>(tag{});
    if (M == 0 || N == 0 || K == 0) return;
    const std::size_t rows = detail::task_rows(M, pool), tasks = (M + rows - 1) / rows;
    pool.run(tasks, [&](std::size_t t) {
        const std::size_t r0 = t * rows, m = std::min(rows, M - r0);
        pk::gemm<float>(
            tag{}, m, N, K,
            [&](std::size_t i0, std::size_t mm, std::size_t k0, std::size_t kn, float* dst) {
                pk::pack_rows_as_strips(pk::mr, r0 + i0, mm, k0, kn, [&](std::size_t r) { return a + r * lda; }, dst);
            },
            [&](std::size_t j0, std::size_t n, std::size_t k0, std::size_t kn, float* dst) {
                pk::pack_cols_as_strips(nr, j0, n, k0, kn, [&](std::size_t k) { return b + k * ldb; }, dst);
            },
            [&](std::size_t i, std::size_t j, std::size_t mm, std::size_t n, bool, const float* tile) {
                for (std::size_t x = 0; x < mm; ++x) {
                    float* out = c + (r0 + i + x) * ldc + j;
                    for (std::size_t y = 0; y < n; ++y) out[y] += tile[x * nr + y];
                }
            });
    });
}

// C (n x n float64, lower triangle: j <= i) += X^T X for the rows of x (tokens x n). Products
// are summed in float over slices of 256 rows of x (packed kernel), and each slice's sums are
// added into C in float64: a slice's sum of 256 products carries at most ~256 u |x_i| |x_j|
// of rounding (u = 2^-24; about 16 u for random signs), far below the sampling noise of a
// Hessian, at half the cost of float64 products. Entries just above the diagonal inside the
// tiles that straddle it are written too (scratch, as rank_update's lower mode).
inline void gram_lower_add(matrix_view<const float> x, double* c, std::size_t ldc, thread_pool& pool) {
    namespace pk = kernel::packed;
    using tag = backend::best;
    constexpr std::size_t nr = pk::tile_nr<float>(tag{});
    const std::size_t n = x.cols;
    if (n == 0 || x.rows == 0) return;
    const std::size_t rows = detail::task_rows(n, pool), tasks = (n + rows - 1) / rows;
    auto row = [&](std::size_t k) { return x.row(k); };
    pool.run(tasks, [&](std::size_t t) {
        const std::size_t task = tasks - 1 - t;  // the long bottom rows first
        const std::size_t r0 = task * rows, m = std::min(rows, n - r0), r1 = r0 + m;
        pk::gemm<float>(
            tag{}, m, r1, x.rows,
            [&](std::size_t i0, std::size_t mm, std::size_t k0, std::size_t kn, float* dst) {
                pk::pack_cols_as_strips(pk::mr, r0 + i0, mm, k0, kn, row, dst);
            },
            [&](std::size_t j0, std::size_t nn, std::size_t k0, std::size_t kn, float* dst) {
                pk::pack_cols_as_strips(nr, j0, nn, k0, kn, row, dst);
            },
            [&](std::size_t i, std::size_t j, std::size_t mm, std::size_t nn, bool, const float* tile) {
                for (std::size_t a = 0; a < mm; ++a) {
                    double* out = c + (r0 + i + a) * ldc + j;
                    for (std::size_t b = 0; b < nn; ++b) out[b] += double(tile[a * nr + b]);
                }
            },
            [&](std::size_t i, std::size_t j) { return j > r0 + i + pk::mr - 1; });
    });
}

// C (n x n float64, lower triangle: j <= i, row stride ldc) -= A A^T, A (n x K, row stride lda),
// on the packed kernel (6 x 8 double tiles on AVX2): the trailing update of the Cholesky factor.
// A may be the panel to the left of C in the same matrix (disjoint columns). Entries just above
// the diagonal inside tiles that straddle it are written too (scratch).
inline void syrk_lower_sub(std::size_t n, std::size_t K, const double* a, std::size_t lda, double* c, std::size_t ldc,
                           thread_pool& pool) {
    namespace pk = kernel::packed;
    using tag = backend::best;
    constexpr std::size_t nr = pk::tile_nr<double>(tag{});
    if (n == 0 || K == 0) return;
    const std::size_t rows = detail::task_rows(n, pool), tasks = (n + rows - 1) / rows;
    auto row = [&](std::size_t i) { return a + i * lda; };
    pool.run(tasks, [&](std::size_t t) {
        const std::size_t task = tasks - 1 - t;  // the long bottom rows first
        const std::size_t r0 = task * rows, m = std::min(rows, n - r0), r1 = r0 + m;
        pk::gemm<double>(
            tag{}, m, r1, K,
            [&](std::size_t i0, std::size_t mm, std::size_t k0, std::size_t kn, double* dst) {
                pk::pack_rows_as_strips(pk::mr, r0 + i0, mm, k0, kn, row, dst);
            },
            [&](std::size_t j0, std::size_t nn, std::size_t k0, std::size_t kn, double* dst) {
                pk::pack_rows_as_strips(nr, j0, nn, k0, kn, row, dst);  // B = A^T: B's column j is A's row j
            },
            [&](std::size_t i, std::size_t j, std::size_t mm, std::size_t nn, bool, const double* tile) {
                for (std::size_t x = 0; x < mm; ++x) {
                    double* out = c + (r0 + i + x) * ldc + j;
                    for (std::size_t y = 0; y < nn; ++y) out[y] -= tile[x * nr + y];
                }
            },
            [&](std::size_t i, std::size_t j) { return j > r0 + i + pk::mr - 1; });
    });
}

// In-place lower Cholesky factor L (A = L L^T) of the n x n symmetric matrix in a (row-major,
// row stride lda; only the lower triangle is read, the upper one is left as scratch). Blocked
// right-looking: factor a 64-column panel, then subtract its outer product from the trailing
// matrix with syrk_lower_sub (n^3 / 3 flops, nearly all in that update). Returns false when
// a pivot is not positive (the matrix is not positive definite to working precision).
inline bool cholesky_lower(double* a, std::size_t n, std::size_t lda, thread_pool& pool) {
    constexpr std::size_t nb = 64;
    for (std::size_t k0 = 0; k0 < n; k0 += nb) {
        const std::size_t k1 = std::min(n, k0 + nb);
        // The diagonal block, column by column.
        for (std::size_t j = k0; j < k1; ++j) {
            double d = a[j * lda + j];
            for (std::size_t m = k0; m < j; ++m) d -= a[j * lda + m] * a[j * lda + m];
            if (!(d > 0.0) || !std::isfinite(d)) return false;
            const double ljj = std::sqrt(d);
            a[j * lda + j] = ljj;
            for (std::size_t i = j + 1; i < k1; ++i) {
                double s = a[i * lda + j];
                for (std::size_t m = k0; m < j; ++m) s -= a[i * lda + m] * a[j * lda + m];
                a[i * lda + j] = s / ljj;
            }
        }
        if (k1 == n) break;
        // The rows below: L[i][k0:k1] solves L[i] L_kk^T = A[i], one row per task slice.
        const std::size_t rest = n - k1;
        // Eight rows at a time: each entry is the same chain of multiply-subtracts as one row
        // alone would give, but eight independent chains keep the FMA units busy (one chain
        // waits on the FMA latency: this loop was a quarter of ffn_down's Cholesky).
        pool.parallel_for(rest, 16, [&](std::size_t i0, std::size_t i1) {
            constexpr std::size_t R = 8;
            std::size_t i = k1 + i0;
            for (; i + R <= k1 + i1; i += R) {
                double* ar[R];
                for (std::size_t r = 0; r < R; ++r) ar[r] = a + (i + r) * lda;
                for (std::size_t j = k0; j < k1; ++j) {
                    const double* aj = a + j * lda;
                    double s[R];
                    for (std::size_t r = 0; r < R; ++r) s[r] = ar[r][j];
                    for (std::size_t m = k0; m < j; ++m) {
                        const double l = aj[m];
                        for (std::size_t r = 0; r < R; ++r) s[r] -= ar[r][m] * l;
                    }
                    for (std::size_t r = 0; r < R; ++r) ar[r][j] = s[r] / aj[j];
                }
            }
            for (; i < k1 + i1; ++i) {
                double* ai = a + i * lda;
                for (std::size_t j = k0; j < k1; ++j) {
                    double s = ai[j];
                    const double* aj = a + j * lda;
                    for (std::size_t m = k0; m < j; ++m) s -= ai[m] * aj[m];
                    ai[j] = s / aj[j];
                }
            }
        });
        // Trailing update: A[i][j] -= sum_m L[i][m] L[j][m] for k1 <= j <= i.
        syrk_lower_sub(rest, k1 - k0, a + k1 * lda + k0, lda, a + k1 * lda + k1, lda, pool);
    }
    return true;
}

}  // namespace linalg
}  // namespace edgeq
