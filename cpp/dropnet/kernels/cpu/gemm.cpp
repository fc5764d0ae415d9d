// GEMM entry: dispatch, cache blocking, threading, the scalar kernel set, the epilogue reference.
//
// Blocking (loop order, outermost first; why each operand sits where it does):
//   ic  over M  step MC   packed A block (MC x KC) stays in L2/L3 for the whole jc loop
//   pc  over K  step KC   K blocks are a function of K alone, so every C element sees the same
//                         sequence of K blocks whatever the thread count (bit-identical results)
//   jc  over N  step NC   packed B block (KC x NC) stays in L2 while every A micro-panel meets it
//   ir  over MC step mr   A micro-panel (mr x KC) stays in L1 while ...
//   jr  over NC step nr   ... the B micro-panels stream from L2 through the micro-kernel
// After the last K block of an mr-row strip the epilogue runs on that strip while it is in cache.
// Threads own disjoint rectangles of C (a tm x tn grid over M and N); each packs its own panels.
#include "dropnet/kernels/cpu/gemm.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <memory>

#include "dropnet/core/cpu_features.h"
#include "dropnet/core/denormals.h"
#include "dropnet/core/epilogue_element.h"
#include "dropnet/core/gemm_blocking.h"
#include "dropnet/core/philox.h"
#include "dropnet/core/threading.h"
#include "dropnet/kernels/cpu/gemm_kernels.h"
#include "dropnet/kernels/cpu/gemm_vec_math.h"

namespace dropnet {
namespace cpu {

using gemm_detail::GemmKernelSet;
using gemm_detail::mask_write_bits;

// ------------------------------------------------------------------ epilogue (reference)

namespace gemm_detail {


// Element by element in row-major order; keep bits are gathered per row segment and written to the
// mask once per 64 elements.
void epilogue_block_scalar(const GemmEpilogue& ep, int64_t row0, int64_t rows, int64_t col0, int64_t cols, int64_t N,
                           float* C, int64_t ldc) {
  for (int64_t i = row0; i < row0 + rows; ++i) {
    float* c = C + i * ldc;
    uint64_t bits = 0, bits_e0 = static_cast<uint64_t>(i * N + col0);
    int n_bits = 0;
    uint64_t block_index = ~uint64_t{0};
    philox::Words block{};
    for (int64_t j = col0; j < col0 + cols; ++j) {
      float a = epilogue_activate(ep, c[j], j, i * N + j);
      if (ep.dropout) {
        const uint64_t e = ep.index_offset + static_cast<uint64_t>(i * N + j);
        if ((e >> 2) != block_index) {
          block_index = e >> 2;
          block = philox::stream_block(ep.seed, ep.stream, block_index);
        }
        const bool keep = block.v[e & 3] < ep.threshold;
        a = epilogue_drop(ep, a, keep);
        if (ep.mask_bits) {
          bits |= static_cast<uint64_t>(keep) << n_bits;
          if (++n_bits == 64) {
            mask_write_bits(ep.mask_bits, bits_e0, bits, 64);
            bits_e0 += 64;
            bits = 0;
            n_bits = 0;
          }
        }
      }
      c[j] = a;
    }
    if (ep.dropout && ep.mask_bits && n_bits > 0) mask_write_bits(ep.mask_bits, bits_e0, bits, n_bits);
  }
}

// ------------------------------------------------------------------ portable packers

void pack_a_generic(int mr, bool trans_a, const float* A, int64_t lda, int64_t i0, int64_t mc, int64_t p0,
                    int64_t kc, float* dst) {
  for (int64_t ip = 0; ip < mc; ip += mr, dst += kc * mr) {
    const int m = static_cast<int>(std::min<int64_t>(mr, mc - ip));
    for (int64_t k = 0; k < kc; ++k) {
      float* d = dst + k * mr;
      if (trans_a) {
        const float* s = A + (p0 + k) * lda + i0 + ip;
        for (int i = 0; i < m; ++i) d[i] = s[i];
      } else {
        const float* s = A + (i0 + ip) * lda + p0 + k;
        for (int i = 0; i < m; ++i) d[i] = s[i * lda];
      }
      for (int i = m; i < mr; ++i) d[i] = 0.f;
    }
  }
}

void pack_b_generic(int nr, bool trans_b, const float* B, int64_t ldb, int64_t p0, int64_t kc, int64_t j0,
                    int64_t nc, float* dst) {
  for (int64_t jp = 0; jp < nc; jp += nr, dst += kc * nr) {
    const int n = static_cast<int>(std::min<int64_t>(nr, nc - jp));
    if (trans_b) {
      // Read each row of B (a column of op(B)) contiguously along k.
      for (int j = 0; j < n; ++j) {
        const float* s = B + (j0 + jp + j) * ldb + p0;
        for (int64_t k = 0; k < kc; ++k) dst[k * nr + j] = s[k];
      }
      for (int64_t k = 0; k < kc; ++k)
        for (int j = n; j < nr; ++j) dst[k * nr + j] = 0.f;
    } else {
      for (int64_t k = 0; k < kc; ++k) {
        const float* s = B + (p0 + k) * ldb + j0 + jp;
        float* d = dst + k * nr;
        for (int j = 0; j < n; ++j) d[j] = s[j];
        for (int j = n; j < nr; ++j) d[j] = 0.f;
      }
    }
  }
}

// ------------------------------------------------------------------ scalar kernel set

namespace {

constexpr int kScalarMr = 4, kScalarNr = 16;

// c = alpha * acc (beta == 0: C not read) or fma(beta, c, alpha * acc), as the vector kernels write back.
void store_tile(const float (&acc)[kScalarMr][kScalarNr], int m, int n, float* C, int64_t ldc,
                const float* alpha_beta) {
  const float alpha = alpha_beta[0], beta = alpha_beta[1];
  for (int i = 0; i < m; ++i) {
    float* c = C + i * ldc;
    if (beta == 0.f)
      for (int j = 0; j < n; ++j) c[j] = alpha * acc[i][j];
    else
      for (int j = 0; j < n; ++j) c[j] = std::fma(beta, c[j], alpha * acc[i][j]);
  }
}

// One accumulator per C element, k in order, one fused multiply-add per k: the same chain of
// roundings as the AVX2 and AVX-512 micro-kernels, so every ISA gives the same bits (std::fma is
// the hardware instruction where there is one, glibc's exact emulation where not). Then
// c = alpha * acc (+ beta * c fused), as the vector kernels write back.
void micro_strided_scalar(int64_t kc, const float* a, const float* b, int64_t ldb, float* C, int64_t ldc,
                          const float* alpha_beta, int m, int n) {
  float acc[kScalarMr][kScalarNr] = {};
  for (int64_t k = 0; k < kc; ++k) {
    const float* ak = a + k * kScalarMr;
    const float* bk = b + k * ldb;
    for (int i = 0; i < kScalarMr; ++i)
      for (int j = 0; j < n; ++j) acc[i][j] = std::fma(ak[i], bk[j], acc[i][j]);
  }
  store_tile(acc, m, n, C, ldc, alpha_beta);
}

void micro_scalar(int64_t kc, const float* a, const float* b, float* C, int64_t ldc, const float* alpha_beta, int m,
                  int n) {
  micro_strided_scalar(kc, a, b, kScalarNr, C, ldc, alpha_beta, m, n);
}

void micro_rows_a_scalar(int64_t kc, const float* a, int64_t lda, const float* b, float* C, int64_t ldc,
                         const float* alpha_beta, int m, int n) {
  // The same chains as micro_strided_scalar, A's element (i, k) at a[i·lda + k].
  float acc[kScalarMr][kScalarNr] = {};
  for (int64_t k = 0; k < kc; ++k) {
    const float* bk = b + k * kScalarNr;
    for (int i = 0; i < m; ++i)
      for (int j = 0; j < n; ++j) acc[i][j] = std::fma(a[i * lda + k], bk[j], acc[i][j]);
  }
  store_tile(acc, m, n, C, ldc, alpha_beta);
}

void pack_a_scalar(bool t, const float* A, int64_t lda, int64_t i0, int64_t mc, int64_t p0, int64_t kc, float* d) {
  pack_a_generic(kScalarMr, t, A, lda, i0, mc, p0, kc, d);
}
void pack_b_scalar(bool t, const float* B, int64_t ldb, int64_t p0, int64_t kc, int64_t j0, int64_t nc, float* d) {
  pack_b_generic(kScalarNr, t, B, ldb, p0, kc, j0, nc, d);
}

}  // namespace

const GemmKernelSet& kernels_scalar() {
  static const GemmKernelSet set{"scalar", kScalarMr, kScalarNr, pack_a_scalar, pack_b_scalar, micro_scalar,
                                 micro_strided_scalar, micro_rows_a_scalar, epilogue_block_scalar};
  return set;
}

}  // namespace gemm_detail

void apply_epilogue(const GemmEpilogue& ep, int64_t row0, int64_t rows, int64_t N, float* C, int64_t ldc) {
  gemm_detail::epilogue_block_scalar(ep, row0, rows, 0, N, N, C, ldc);
}

void sgemm_naive(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                 int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc,
                 const GemmEpilogue* epilogue) {
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) {
      float acc = 0.f;
      for (int64_t k = 0; k < K; ++k) {
        const float a = trans_a ? A[k * lda + i] : A[i * lda + k];
        const float b = trans_b ? B[j * ldb + k] : B[k * ldb + j];
        acc += a * b;
      }
      C[i * ldc + j] = alpha * acc + (beta == 0.f ? 0.f : beta * C[i * ldc + j]);
    }
  if (epilogue) apply_epilogue(*epilogue, 0, M, N, C, ldc);
}

// ------------------------------------------------------------------ driver

namespace {

// Cache blocking for a Zen 4-class core (32 KB L1D, 1 MB L2): KC x mr A micro-panel in L1,
// KC x NC B block in L2 (KC * NC * 4 = 512 KB), MC x KC A block in L2/L3. Measured against
// KC/NC = 384/384, 256/768, 512/256, 192/1024 and MC = 240: all within 3 %, this one never worse.
// KC (the K blocking, part of the canonical order) lives in core/gemm_blocking.h, shared with the GPU.
#ifndef DROPNET_GEMM_NC  // overridable only to measure other blockings
#define DROPNET_GEMM_NC 512
#define DROPNET_GEMM_MC 960
#endif
constexpr int64_t kNcMax = DROPNET_GEMM_NC;
constexpr int64_t kMcMax = DROPNET_GEMM_MC;
// Below this many flops one thread finishes before a team would have woken up.
constexpr double kMinFlopsPerThread = 1.5e6;


// Near-equal blocks of [0, n) that are multiples of `unit`, at most `cap` long.
int64_t balanced_block(int64_t n, int64_t cap, int64_t unit) {
  cap = std::max(unit, cap / unit * unit);  // pack buffers hold whole panels
  const int64_t n_blocks = (n + cap - 1) / cap;
  const int64_t b = (n + n_blocks - 1) / n_blocks;
  return std::min(cap, (b + unit - 1) / unit * unit);
}

struct AlignedDeleter {
  void operator()(float* p) const { std::free(p); }
};

// Per-thread pack buffer, grown when a call needs more; reused across calls (never in a loop).
float* thread_buffer(int which, int64_t n_floats) {
  thread_local std::unique_ptr<float, AlignedDeleter> buf[2];
  thread_local int64_t cap[2] = {0, 0};
  if (n_floats > cap[which]) {
    const int64_t bytes = (n_floats * static_cast<int64_t>(sizeof(float)) + 4095) / 4096 * 4096;
    buf[which].reset(static_cast<float*>(std::aligned_alloc(4096, static_cast<size_t>(bytes))));
    if (!buf[which]) throw std::bad_alloc();
    cap[which] = bytes / static_cast<int64_t>(sizeof(float));
  }
  return buf[which].get();
}

struct GemmArgs {
  bool trans_a, trans_b;
  int64_t M, N, K;
  float alpha;
  const float* A;
  int64_t lda;
  const float* B;
  int64_t ldb;
  float beta;
  float* C;
  int64_t ldc;
  const GemmEpilogue* ep;
};

// C rows [m0, m1) x columns [n0, n1) on the calling thread, loop order as in the file comment.
void gemm_rect(const GemmKernelSet& ks, const GemmArgs& g, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  const int mr = ks.mr, nr = ks.nr;
  const int64_t kc_max = gemm_detail::k_block(g.K);
  const int64_t mc_max = balanced_block(m1 - m0, kMcMax, mr);
  const int64_t nc_max = balanced_block(n1 - n0, kNcMax, nr);
  // One column panel: each A panel would meet a single B panel, so packing A (a transpose when
  // !trans_a) costs as much as the product. The micro-kernel reads A in place instead
  // (micro_rows_a: the same operations, the same bits), as for a weight gradient dY · colsᵀ with
  // 10 columns.
  const bool a_in_place = !g.trans_a && n1 - n0 <= nr;
  float* packed_a = a_in_place ? nullptr : thread_buffer(0, mc_max * kc_max);
  float* packed_b = thread_buffer(1, nc_max * kc_max);
  for (int64_t ic = m0; ic < m1; ic += mc_max) {
    const int64_t mc = std::min(mc_max, m1 - ic);
    for (int64_t pc = 0; pc < g.K; pc += kc_max) {
      const int64_t kc = std::min(kc_max, g.K - pc);
      const float alpha_beta[2] = {g.alpha, pc == 0 ? g.beta : 1.f};
      const bool last_k = pc + kc == g.K;
      if (!a_in_place) ks.pack_a(g.trans_a, g.A, g.lda, ic, mc, pc, kc, packed_a);
      for (int64_t jc = n0; jc < n1; jc += nc_max) {
        const int64_t nc = std::min(nc_max, n1 - jc);
        ks.pack_b(g.trans_b, g.B, g.ldb, pc, kc, jc, nc, packed_b);
        for (int64_t ir = 0; ir < mc; ir += mr) {
          const int m = static_cast<int>(std::min<int64_t>(mr, mc - ir));
          float* c_row = g.C + (ic + ir) * g.ldc + jc;
          for (int64_t jr = 0; jr < nc; jr += nr) {
            const int n = static_cast<int>(std::min<int64_t>(nr, nc - jr));
            if (a_in_place)
              ks.micro_rows_a(kc, g.A + (ic + ir) * g.lda + pc, g.lda, packed_b + jr * kc, c_row + jr, g.ldc,
                              alpha_beta, m, n);
            else
              ks.micro(kc, packed_a + ir * kc, packed_b + jr * kc, c_row + jr, g.ldc, alpha_beta, m, n);
          }
          if (last_k && g.ep) ks.epilogue(*g.ep, ic + ir, m, jc, nc, g.N, g.C, g.ldc);
        }
      }
    }
  }
}

// K == 0 or alpha == 0: C = beta * C (beta == 0 writes zeros), then the epilogue, rows [m0, m1).
void scale_rows(const GemmKernelSet& ks, const GemmArgs& g, int64_t m0, int64_t m1) {
  for (int64_t i = m0; i < m1; ++i) {
    float* c = g.C + i * g.ldc;
    if (g.beta == 0.f) std::memset(c, 0, static_cast<size_t>(g.N) * sizeof(float));
    else if (g.beta != 1.f)
      for (int64_t j = 0; j < g.N; ++j) c[j] *= g.beta;
  }
  if (g.ep) ks.epilogue(*g.ep, m0, m1 - m0, 0, g.N, g.N, g.C, g.ldc);
}

// Threads grid tm x tn over (M, N): the split with the least work for the busiest thread, counting
// the padded tiles it computes and the panels it packs (each thread packs its rows of A and its
// columns of B, so splitting N re-packs A and splitting M re-packs B).
void choose_grid(int threads, int64_t M, int64_t N, int64_t K, int mr, int nr, int* tm, int* tn) {
  double best = -1;
  for (int a = 1; a <= threads; ++a) {
    if (threads % a) continue;
    const int b = threads / a;
    const int64_t rows = ((M + mr - 1) / mr + a - 1) / a * mr;
    const int64_t cols = ((N + nr - 1) / nr + b - 1) / b * nr;
    if ((M + mr - 1) / mr < a || (N + nr - 1) / nr < b) continue;  // a thread with nothing to do
    const double cost = 2.0 * static_cast<double>(rows) * cols * K + 8.0 * (rows + cols) * K;
    if (best < 0 || cost < best) {
      best = cost;
      *tm = a;
      *tn = b;
    }
  }
  if (best < 0) *tm = *tn = 1;
}

// Columns are split between threads in half register tiles: the micro-kernel runs a half-width
// tile (one vector per row) at full speed, and halves balance e.g. 300 columns better than 32s.
int64_t col_unit(const GemmKernelSet& ks) { return ks.nr % 2 == 0 ? ks.nr / 2 : ks.nr; }

const GemmKernelSet& kernels_for(Isa isa) {
  switch (isa) {
    case Isa::avx512: return gemm_detail::kernels_avx512();
    case Isa::avx2: return gemm_detail::kernels_avx2();
    case Isa::scalar: break;
  }
  return gemm_detail::kernels_scalar();
}

}  // namespace

namespace gemm_detail {

const GemmKernelSet& kernels_active() { return kernels_for(active_isa()); }

// K blocks of near-equal size (no thin last block). A function of K alone: determinism rests on it.
int64_t k_block(int64_t K) { return gemm_k_block(K); }

}  // namespace gemm_detail

void epilogue_pass(const GemmEpilogue& ep, int64_t row0, int64_t rows, int64_t N, float* C, int64_t ldc) {
  DenormalsFlushed ftz;
  kernels_for(active_isa()).epilogue(ep, row0, rows, 0, N, N, C, ldc);
}

void sgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
           int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc,
           const GemmEpilogue* epilogue) {
  if (M <= 0 || N <= 0) return;
  const GemmKernelSet& ks = kernels_for(active_isa());
  const GemmArgs g{trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, epilogue};
  const bool no_product = K <= 0 || alpha == 0.f;
  const double flops = no_product ? static_cast<double>(M) * N : 2.0 * M * N * K;
  int threads = static_cast<int>(std::min<double>(get_num_threads(), std::max(1.0, flops / kMinFlopsPerThread)));
  if (threads > 1 && no_product) threads = static_cast<int>(std::min<int64_t>(threads, M));
  int tm = 1, tn = 1;
  if (threads > 1 && !no_product) {
    choose_grid(threads, M, N, K, ks.mr, col_unit(ks), &tm, &tn);
    threads = tm * tn;
  }
  // Each thread's rectangle: rows split over whole register tiles, columns over col_unit.
  auto run = [&](int t) {
    DenormalsFlushed flushed;
    if (no_product) {
      int64_t b, e;
      split_range(M, threads, t, &b, &e);
      if (b < e) scale_rows(ks, g, b, e);
      return;
    }
    const int64_t cu = col_unit(ks);
    const int64_t row_tiles = (M + ks.mr - 1) / ks.mr, col_units = (N + cu - 1) / cu;
    int64_t rb, re, cb, ce;
    split_range(row_tiles, tm, t / tn, &rb, &re);
    split_range(col_units, tn, t % tn, &cb, &ce);
    const int64_t m0 = rb * ks.mr, m1 = std::min(M, re * ks.mr);
    const int64_t n0 = cb * cu, n1 = std::min(N, ce * cu);
    if (m0 < m1 && n0 < n1) gemm_rect(ks, g, m0, m1, n0, n1);
  };
  if (threads <= 1) {
    run(0);
    return;
  }
  // Exceptions (a failed pack-buffer allocation) must not cross the OpenMP region.
  std::exception_ptr error;
#pragma omp parallel num_threads(threads)
  {
    try {
      for (int t = omp_get_thread_num(); t < threads; t += omp_get_num_threads()) run(t);
    } catch (...) {
#pragma omp critical(dropnet_gemm_error)
      if (!error) error = std::current_exception();
    }
  }
  if (error) std::rethrow_exception(error);
}

}  // namespace cpu
}  // namespace dropnet
