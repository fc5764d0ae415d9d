// Winograd F(2×2, 3×3) drivers: weight transforms, blocking, threads, the weight-gradient
// reduction. The transform bodies are in conv2d_winograd_body.h (this unit compiles the scalar copy).
#include "dropnet/kernels/cpu/conv2d_winograd.h"

#include <algorithm>

#include "dropnet/core/cpu_features.h"
#include "dropnet/core/denormals.h"
#include "dropnet/core/parallel.h"
#include "dropnet/core/threading.h"
#include "dropnet/kernels/cpu/conv2d.h"
#include "dropnet/kernels/cpu/conv2d_winograd_body.h"
#include "dropnet/kernels/cpu/gemm_kernels.h"

namespace dropnet {
namespace cpu {

WinogradTransforms winograd_transforms_scalar(int64_t tile) { return winograd_transforms_any<ScalarRows>(tile); }

namespace {

// ξ = (1, 1), where A dY Aᵀ is the sum of the output tile's dy (row and column 1 of A are all ones).
int64_t bias_position(const WinogradPlan& p) { return p.tile + 3; }

// Images a block transforms before its GEMMs: the largest power of two up to
// kConvImagesPerChunk (so blocks tile a chunk) whose transformed tensors stay within
// kBlockFloats (1 MiB, half a core's L2 here; 2 MiB measured slower), doubled while the block has
// fewer than kMinBlockTiles tiles (the GEMMs' columns: at 7 × 7 a 2-image block gives 36, and
// the micro-kernel's 32-column panels run a 4-column tail at the cost of 16; 4 images measured
// faster at 128 → 128, 7 × 7). See docs/design.md, "Convolution paths".
constexpr int64_t kBlockFloats = int64_t{1} << 18;
constexpr int64_t kMinBlockTiles = 64;

// Row stride of a transformed tensor whose rows hold `tiles` columns: at least 16 floats of slack
// for the transforms' last vector (conv2d_winograd_body.h), rounded to whole 64-byte lines.
int64_t row_stride(int64_t tiles) { return (tiles + 31) / 16 * 16; }

// Floats between the 16 planes of a transformed tensor of `floats` per plane: whole lines and 64
// bytes more, so that planes a multiple of 4 KiB long do not all map to the same L1 sets (the
// transforms write and the GEMMs read the 16 planes side by side).
int64_t plane_stride(int64_t floats) { return (floats + 15) / 16 * 16 + 16; }

// The plan of a group of images (WinogradPlan): the whole block side by side where the geometry
// packs, else one image.
WinogradPlan group_plan(WinogradPlan p, int64_t block) {
  p.across = p.packs() ? block : 1;
  return p;
}

// A block of nb images as groups of pg.across: their tiles (the GEMMs' columns), group after group.
int64_t block_tiles(const WinogradPlan& pg, int64_t nb) { return (nb + pg.across - 1) / pg.across * pg.tiles(); }

// Images per block of plan p whose transformed tensors have `rows` rows (channels) per position.
int64_t images_per_block(const WinogradPlan& p, int64_t rows) {
  int64_t b = kConvImagesPerChunk;
  while (b > 1 && p.positions() * rows * block_tiles(group_plan(p, b), b) > kBlockFloats) b /= 2;
  while (b < kConvImagesPerChunk && block_tiles(group_plan(p, b), b) < kMinBlockTiles) b *= 2;
  return b;
}

WinogradTransforms active_transforms(int64_t tile) {
  switch (active_isa()) {
    case Isa::avx512: return winograd_transforms_avx512(tile);
    case Isa::avx2: return winograd_transforms_avx2(tile);
    default: return winograd_transforms_scalar(tile);
  }
}

WinogradPlan forward_plan(const ConvGeometry& g, int64_t F) {
  return winograd_plan(g.C, g.H, g.W, g.pad_top, g.pad_left, g.OH, g.OW, winograd_tile(g, F));
}

// u[ξ·stride] = (G g Gᵀ)_ξ, G = [1 0 0; ½ ½ ½; ½ -½ ½; 0 0 1], the 3 × 3 filter g read as
// g[i·si + j·sj] (negative strides read it flipped). Columns of G g first, then its rows.
void weight_transform2(const float* g, int64_t si, int64_t sj, float* u, int64_t stride) {
  float h[4][3];
  for (int j = 0; j < 3; ++j) {
    const float g0 = g[j * sj], g1 = g[si + j * sj], g2 = g[2 * si + j * sj];
    h[0][j] = g0;
    h[1][j] = 0.5f * ((g0 + g1) + g2);
    h[2][j] = 0.5f * ((g0 - g1) + g2);
    h[3][j] = g2;
  }
  for (int k = 0; k < 4; ++k) {
    const float a = h[k][0], b = h[k][1], c = h[k][2];
    u[(4 * k + 0) * stride] = a;
    u[(4 * k + 1) * stride] = 0.5f * ((a + b) + c);
    u[(4 * k + 2) * stride] = 0.5f * ((a - b) + c);
    u[(4 * k + 3) * stride] = c;
  }
}

// out[(r·9 + k)·Q + q] = (Gᵀ X G)[k] (3 × 3, k = 3i + j) of the 4 × 4 X read at
// du[ξ·stride + r·ld + q], for every r < R and q < Q: columns of X first, then rows. The loop runs
// over q, where du is contiguous, so it vectorises; every value is the same expression whatever
// the loop (no contraction), so the layout changes no bit.
void weight_grad_transform2(const float* du, int64_t stride, int64_t R, int64_t ld, int64_t Q, float* out) {
  for (int64_t r = 0; r < R; ++r) {
    const float* x = du + r * ld;
    float* o = out + r * 9 * Q;
#pragma omp simd
    for (int64_t q = 0; q < Q; ++q) {
      float h[3][4];
      for (int l = 0; l < 4; ++l) {
        const float x0 = x[l * stride + q], x1 = x[(4 + l) * stride + q], x2 = x[(8 + l) * stride + q],
                    x3 = x[(12 + l) * stride + q];
        const float s = 0.5f * (x1 + x2);
        h[0][l] = x0 + s;
        h[1][l] = 0.5f * (x1 - x2);
        h[2][l] = s + x3;
      }
      for (int i = 0; i < 3; ++i) {
        const float s = 0.5f * (h[i][1] + h[i][2]);
        o[(i * 3 + 0) * Q + q] = h[i][0] + s;
        o[(i * 3 + 1) * Q + q] = 0.5f * (h[i][1] - h[i][2]);
        o[(i * 3 + 2) * Q + q] = s + h[i][3];
      }
    }
  }
}

// F(4×4, 3×3): G = [¼ 0 0; −⅙ −⅙ −⅙; −⅙ ⅙ −⅙; 1/24 1/12 ⅙; 1/24 −1/12 ⅙; 0 0 1] applied to
// (g_0, g_1, g_2) with the sums before the one product by an inexact constant.
constexpr float kSixth = 1.f / 6, kTwelfth = 1.f / 12, kTwentyFourth = 1.f / 24;

inline void g6(float g0, float g1, float g2, float o[6]) {
  const float s = g0 + g2, t = g0 + 4.f * g2;
  o[0] = 0.25f * g0;
  o[1] = -kSixth * (s + g1);
  o[2] = -kSixth * (s - g1);
  o[3] = kTwentyFourth * (t + 2.f * g1);
  o[4] = kTwentyFourth * (t - 2.f * g1);
  o[5] = g2;
}

// Gᵀ applied to (x_0 … x_5): the adjoint of g6.
inline void gt3(const float x[6], float o[3]) {
  const float s12 = x[1] + x[2], s34 = x[3] + x[4];
  o[0] = (0.25f * x[0] - kSixth * s12) + kTwentyFourth * s34;
  o[1] = kSixth * (x[2] - x[1]) + kTwelfth * (x[3] - x[4]);
  o[2] = kSixth * (s34 - s12) + x[5];
}

// u[ξ·stride] = (G g Gᵀ)_ξ, ξ = 6k + l, for F(4×4): columns of G g first, then its rows.
void weight_transform4(const float* g, int64_t si, int64_t sj, float* u, int64_t stride) {
  float h[6][3];
  for (int j = 0; j < 3; ++j) {
    float o[6];
    g6(g[j * sj], g[si + j * sj], g[2 * si + j * sj], o);
    for (int k = 0; k < 6; ++k) h[k][j] = o[k];
  }
  for (int k = 0; k < 6; ++k) {
    float o[6];
    g6(h[k][0], h[k][1], h[k][2], o);
    for (int l = 0; l < 6; ++l) u[(6 * k + l) * stride] = o[l];
  }
}

// weight_grad_transform2's contract for F(4×4): (Gᵀ X G) of the 6 × 6 X, columns then rows.
void weight_grad_transform4(const float* du, int64_t stride, int64_t R, int64_t ld, int64_t Q, float* out) {
  for (int64_t r = 0; r < R; ++r) {
    const float* x = du + r * ld;
    float* o = out + r * 9 * Q;
#pragma omp simd
    for (int64_t q = 0; q < Q; ++q) {
      float h[3][6];
      for (int l = 0; l < 6; ++l) {
        float col[6], hl[3];
        for (int k = 0; k < 6; ++k) col[k] = x[(6 * k + l) * stride + q];
        gt3(col, hl);
        for (int i = 0; i < 3; ++i) h[i][l] = hl[i];
      }
      for (int i = 0; i < 3; ++i) {
        float oi[3];
        gt3(h[i], oi);
        for (int j = 0; j < 3; ++j) o[(i * 3 + j) * Q + q] = oi[j];
      }
    }
  }
}

void weight_transform(int64_t tile, const float* g, int64_t si, int64_t sj, float* u, int64_t stride) {
  if (tile == 4) weight_transform4(g, si, sj, u, stride);
  else weight_transform2(g, si, sj, u, stride);
}

void weight_grad_transform(int64_t tile, const float* du, int64_t stride, int64_t R, int64_t ld, int64_t Q,
                           float* out) {
  if (tile == 4) weight_grad_transform4(du, stride, R, ld, Q, out);
  else weight_grad_transform2(du, stride, R, ld, Q, out);
}

// dU (F × cols, row stride ldu) (+)= Ŷ (F × tiles) · Vᵀ (V: cols × tiles), both row-major with
// row stride ld, the GEMM's order element for element
// (docs/design.md, "Canonical reduction orders"): K (the tiles) in blocks of k_block(tiles), beta
// for the first block, 1 after. Ŷ is
// read in place (micro_rows_a), only V is transposed into the B panels (`packed`: at least
// (cols + nr - 1) · k_block(tiles) floats, k_block(tiles) <= tiles rounded up to 8).
void weight_grad_products(const gemm_detail::GemmKernelSet& ks, const float* yhat, const float* v, int64_t ld,
                          int64_t F, int64_t cols, int64_t tiles, float beta, float* du, int64_t ldu, float* packed) {
  const int64_t kb = gemm_detail::k_block(tiles);
  for (int64_t pc = 0; pc < tiles; pc += kb) {
    const int64_t kc = std::min(kb, tiles - pc);
    ks.pack_b(true, v, ld, pc, kc, 0, cols, packed);
    const float alpha_beta[2] = {1.f, pc == 0 ? beta : 1.f};
    for (int64_t jr = 0; jr < cols; jr += ks.nr)
      for (int64_t ir = 0; ir < F; ir += ks.mr)
        ks.micro_rows_a(kc, yhat + ir * ld + pc, ld, packed + jr * kc, du + ir * ldu + jr, ldu, alpha_beta,
                        static_cast<int>(std::min<int64_t>(ks.mr, F - ir)),
                        static_cast<int>(std::min<int64_t>(ks.nr, cols - jr)));
  }
}

// The transformed filters of the forward and input-gradient products, U_ξ (rows × depth) for the
// 16 positions, packed once per call into the active GEMM kernel set's A panels, so that the
// products below run its micro-kernel straight on the transforms' output (no packing per block).
// Per position: the K blocks of gemm_detail::k_block(depth) in order, each ceil(rows / mr) panels.
int64_t packed_filters_floats(int64_t rows, int64_t depth, int64_t positions) {
  return positions * (rows + 15) * depth;
}

void pack_filters(const gemm_detail::GemmKernelSet& ks, const float* u, int64_t rows, int64_t depth,
                  int64_t positions, float* packed) {
  const int64_t rows_padded = (rows + ks.mr - 1) / ks.mr * ks.mr, kb = gemm_detail::k_block(depth);
  for (int64_t xi = 0; xi < positions; ++xi)
    for (int64_t pc = 0; pc < depth; pc += kb) {
      const int64_t kc = std::min(kb, depth - pc);
      ks.pack_a(false, u + xi * rows * depth, depth, 0, rows, pc, kc, packed + (xi * depth + pc) * rows_padded);
    }
}

// M_ξ (rows × tiles, row stride ld, planes pm apart) = U_ξ · V_ξ (depth × tiles, row stride ld,
// planes pv apart) for the 16 positions: the GEMM's K blocks, accumulators and write-back exactly
// (docs/design.md, "Canonical reduction orders"), with V read in place. Loop order: per position
// and column panel of nr tiles (depth × nr of V, in L1), every row panel of U.
void winograd_products(const gemm_detail::GemmKernelSet& ks, const float* packed, int64_t rows, int64_t depth,
                       int64_t positions, const float* v, int64_t pv, int64_t tiles, int64_t ld, float* m,
                       int64_t pm) {
  const int64_t rows_padded = (rows + ks.mr - 1) / ks.mr * ks.mr, kb = gemm_detail::k_block(depth);
  for (int64_t xi = 0; xi < positions; ++xi)
    for (int64_t jr = 0; jr < tiles; jr += ks.nr) {
      const int n = static_cast<int>(std::min<int64_t>(ks.nr, tiles - jr));
      for (int64_t pc = 0; pc < depth; pc += kb) {
        const int64_t kc = std::min(kb, depth - pc);
        const float alpha_beta[2] = {1.f, pc == 0 ? 0.f : 1.f};
        const float* a = packed + (xi * depth + pc) * rows_padded;
        for (int64_t ir = 0; ir < rows; ir += ks.mr)
          ks.micro_strided(kc, a + ir * kc, v + xi * pv + pc * ld + jr, ld, m + xi * pm + ir * ld + jr, ld, alpha_beta,
                           static_cast<int>(std::min<int64_t>(ks.mr, rows - ir)), n);
      }
    }
}

// Images [n0, n1) of y (out × OH × OW each) = the plan's correlation of x (in × H × W each) with
// the transformed filters (pack_filters), block images at a time (groups of pg.across): transform,
// 16 products, inverse transform (+ bias), then the activation on the block while it is in cache.
// scratch: correlate_scratch(pg) floats, the first winograd_input_scratch(pg) zeroed before the
// thread's first call.
int64_t correlate_scratch(const WinogradPlan& pg) { return winograd_input_scratch(pg) + winograd_output_scratch(pg); }

void correlate_images(const WinogradTransforms& tf, const WinogradPlan& pg, const float* x, int64_t n0, int64_t n1,
                      const float* packed_u, int64_t out, const float* bias, const GemmEpilogue* ep, float* y,
                      int64_t block, float* v, float* m, float* scratch) {
  const int64_t in = pg.in_channels, T = pg.tiles(), P = pg.OH * pg.OW;
  const int64_t in_image = in * pg.H * pg.W, out_image = out * P;
  const gemm_detail::GemmKernelSet& ks = gemm_detail::kernels_active();
  float* out_scratch = scratch + winograd_input_scratch(pg);
  for (int64_t b0 = n0; b0 < n1; b0 += block) {
    const int64_t nb = std::min(block, n1 - b0), Tb = block_tiles(pg, nb);
    const int64_t ld = row_stride(Tb), pv = plane_stride(in * ld), pm = plane_stride(out * ld);
    for (int64_t i = 0; i < nb; i += pg.across)
      tf.input(x + (b0 + i) * in_image, in_image, std::min(pg.across, nb - i), pg, v + i / pg.across * T, ld, pv,
               scratch);
    winograd_products(ks, packed_u, out, in, pg.positions(), v, pv, Tb, ld, m, pm);
    for (int64_t i = 0; i < nb; i += pg.across)
      tf.output(m + i / pg.across * T, ld, pm, pg, out, bias, y + (b0 + i) * out_image, out_image,
                std::min(pg.across, nb - i), out_scratch);
    if (ep) epilogue_pass(*ep, 0, nb * out, P, y + b0 * out_image, P);
  }
}

// Images per block: the largest power of two up to kConvImagesPerChunk whose transformed tensors
// (16 positions of C + F rows, one image's tiles each) stay within kBlockFloats; side by side
// (group_plan) they take no more.
int64_t forward_block(const WinogradPlan& p, int64_t F) { return images_per_block(p, p.in_channels + F); }

int64_t forward_per_part(const WinogradPlan& p, int64_t F) {
  const int64_t block = forward_block(p, F), Tb = block * p.tiles();
  return p.positions() * (plane_stride(p.in_channels * row_stride(Tb)) + plane_stride(F * row_stride(Tb))) +
         correlate_scratch(group_plan(p, block));
}

// Backward blocks: the image count whose transformed tensors (V of x and the products' Z: C + 1
// rows, A dY Aᵀ: F rows, 16 positions) stay within kBlockFloats.
int64_t backward_block(const WinogradPlan& px, int64_t F) {
  return images_per_block(px, px.in_channels + F);
}

// Per part: the chunk's transformed weight gradient (16 × F × (C + 1): column C of position 5
// collects the bias gradient), then the block's tensors: one of C + 1 rows (V of x with a row of
// ones, then the input gradient's products Z) and one of F rows (A dY Aᵀ), the B panels of the
// weight-gradient products, then scratch.
struct BackwardPart {
  int64_t du, buf_c, buf_f, packed, scratch;
  int64_t total() const { return du + buf_c + buf_f + packed + scratch; }
};

BackwardPart backward_part(const WinogradPlan& px, int64_t F) {
  const int64_t C = px.in_channels, block = backward_block(px, F), T = block * px.tiles();
  const WinogradPlan pg = group_plan(px, block);
  const int64_t positions = px.positions();
  return {positions * F * (C + 1), positions * plane_stride((C + 1) * row_stride(T)),
          positions * plane_stride(F * row_stride(T)), (C + 1 + 31) * ((T + 7) / 8 * 8),
          winograd_input_scratch(pg) + winograd_grad_output_scratch(pg, F) + winograd_input_grad_scratch(pg)};
}

}  // namespace

WinogradPlan winograd_plan(int64_t in_channels, int64_t H, int64_t W, int64_t pad_top, int64_t pad_left, int64_t OH,
                           int64_t OW, int64_t tile) {
  WinogradPlan p;
  p.in_channels = in_channels;
  p.H = H;
  p.W = W;
  p.pad_top = pad_top;
  p.pad_left = pad_left;
  p.OH = OH;
  p.OW = OW;
  p.tile = tile;
  p.TH = (OH + tile - 1) / tile;
  p.TW = (OW + tile - 1) / tile;
  return p;
}

bool winograd_applies(const ConvGeometry& g, int64_t F) {
  return g.kh == 3 && g.kw == 3 && g.stride_h == 1 && g.stride_w == 1 && g.dil_h == 1 && g.dil_w == 1 &&
         g.groups == 1 && g.pad_top >= 0 && g.pad_top <= 2 && g.pad_left >= 0 && g.pad_left <= 2 && g.OH >= 1 &&
         g.OW >= 1 && g.C >= kWinogradMinChannels && F <= kWinogradMaxFiltersPerChannel * g.C;
}

int64_t winograd_tile(const ConvGeometry& g, int64_t /*F*/) {
  return g.OH >= kWinograd4MinSide && g.OW >= kWinograd4MinSide ? 4 : 2;
}

int64_t winograd_forward_workspace(const ConvGeometry& g, int64_t F, int threads) {
  const WinogradPlan p = forward_plan(g, F);
  return p.positions() * F * g.C + packed_filters_floats(F, g.C, p.positions()) +
         std::max(threads, 1) * forward_per_part(p, F);
}

void winograd_forward(const float* x, int64_t N, const ConvGeometry& g, const float* w, int64_t F, const float* bias,
                      Activation activation, float leaky_slope, float* y, float* workspace, int64_t workspace_floats) {
  const WinogradPlan p = forward_plan(g, F);
  const int64_t C = g.C, positions = p.positions();
  float* u = workspace;  // positions × F × C
  for (int64_t f = 0; f < F; ++f)
    for (int64_t c = 0; c < C; ++c) weight_transform(p.tile, w + (f * C + c) * 9, 3, 1, u + f * C + c, F * C);
  float* packed_u = u + positions * F * C;
  pack_filters(gemm_detail::kernels_active(), u, F, C, positions, packed_u);
  const int64_t fixed = positions * F * C + packed_filters_floats(F, C, positions);
  const int64_t block = forward_block(p, F), blocks = (N + block - 1) / block, per_part = forward_per_part(p, F);
  const int parts = conv_parts_for_workspace(blocks, fixed, per_part, workspace_floats);
  GemmEpilogue epilogue;
  epilogue.activation = activation;
  epilogue.leaky_slope = leaky_slope;
  const GemmEpilogue* ep = activation == Activation::identity ? nullptr : &epilogue;
  const WinogradTransforms tf = active_transforms(p.tile);
  const int64_t Tb = block * p.tiles();
  const WinogradPlan pg = group_plan(p, block);
  for_each_part(blocks, parts, [&](int part, int64_t b0, int64_t b1) {
    DenormalsFlushed flushed;
    float* v = workspace + fixed + part * per_part;
    float* m = v + positions * plane_stride(C * row_stride(Tb));
    float* scratch = m + positions * plane_stride(F * row_stride(Tb));
    std::fill(scratch, scratch + winograd_input_scratch(pg), 0.f);
    correlate_images(tf, pg, x, b0 * block, std::min(N, b1 * block), packed_u, F, bias, ep, y, block, v, m,
                     scratch);
  });
}

int64_t winograd_backward_workspace(const ConvGeometry& g, int64_t N, int64_t F, int threads) {
  const WinogradPlan px = forward_plan(g, F);
  const int64_t chunks = (N + kConvImagesPerChunk - 1) / kConvImagesPerChunk;
  return chunks * (F * g.C * 9 + F) + px.positions() * g.C * F + packed_filters_floats(g.C, F, px.positions()) +
         std::max(threads, 1) * backward_part(px, F).total();
}

void winograd_backward(const float* dy, const float* x, int64_t N, const ConvGeometry& g, const float* w, int64_t F,
                       float* dx, float* dw, float* db, float* workspace, int64_t workspace_floats) {
  const WinogradPlan px = forward_plan(g, F);
  const int64_t positions = px.positions(), bias_xi = bias_position(px);
  const int64_t C = g.C, C1 = C + 1, K = C * 9, P = g.OH * g.OW, CHW = C * g.H * g.W;
  const int64_t chunks = (N + kConvImagesPerChunk - 1) / kConvImagesPerChunk;
  const int64_t partial_size = F * K + F;  // dw (F × 3 × 3 × C: the order below) then db (F)
  float* partials = workspace;
  // The input gradient's products Z_ξ (C × tiles) = U_ξᵀ (C × F) · (A dY Aᵀ)_ξ: the forward's
  // transformed filters, transposed.
  float* u_t = partials + chunks * partial_size;  // positions × C × F
  float* packed_u_t = u_t + positions * C * F;
  const gemm_detail::GemmKernelSet& ks = gemm_detail::kernels_active();
  if (dx) {
    for (int64_t f = 0; f < F; ++f)
      for (int64_t c = 0; c < C; ++c) weight_transform(px.tile, w + (f * C + c) * 9, 3, 1, u_t + c * F + f, C * F);
    pack_filters(ks, u_t, C, F, positions, packed_u_t);
  }
  const BackwardPart layout = backward_part(px, F);
  const int64_t fixed = chunks * partial_size + positions * C * F + packed_filters_floats(C, F, positions);
  const int parts = conv_parts_for_workspace(chunks, fixed, layout.total(), workspace_floats);
  const int64_t block = backward_block(px, F);
  const WinogradPlan pg = group_plan(px, block);
  const int64_t Tg = pg.tiles(), across = pg.across;
  const WinogradTransforms tf = active_transforms(px.tile);

  for_each_part(chunks, parts, [&](int part, int64_t c0, int64_t c1) {
    DenormalsFlushed flushed;
    float* du = workspace + fixed + part * layout.total();  // positions × F × C1
    float* buf_c = du + layout.du;
    float* buf_f = buf_c + layout.buf_c;
    float* packed = buf_f + layout.buf_f;
    float* scratch_x = packed + layout.packed;  // input transform of x, grad_output of dy, input_grad
    float* scratch_dy = scratch_x + winograd_input_scratch(pg);
    float* scratch_dx = scratch_dy + winograd_grad_output_scratch(pg, F);
    std::fill(scratch_x, scratch_dx + winograd_input_grad_scratch(pg), 0.f);
    for (int64_t chunk = c0; chunk < c1; ++chunk) {
      const int64_t n_begin = chunk * kConvImagesPerChunk, n_end = std::min(N, n_begin + kConvImagesPerChunk);
      for (int64_t b0 = n_begin; b0 < n_end; b0 += block) {
        const int64_t nb = std::min(block, n_end - b0), Tb = block_tiles(pg, nb);
        const int64_t ld = row_stride(Tb), pc = plane_stride(C1 * ld), pf = plane_stride(F * ld);
        for (int64_t i = 0; i < nb; i += across) {
          const int64_t count = std::min(across, nb - i);
          tf.input(x + (b0 + i) * CHW, CHW, count, pg, buf_c + i / across * Tg, ld, pc, scratch_x);
          tf.grad_output(dy + (b0 + i) * F * P, F * P, count, pg, F, buf_f + i / across * Tg, ld, pf, scratch_dy);
        }
        // dU_ξ (F × C) (+)= (A dY Aᵀ)_ξ (F × tiles) · V_ξᵀ: the block's tiles in order. (A dY Aᵀ) at
        // the bias position (row 1, column 1) is the sum of the tile's dy values, so a row of ones
        // under V there makes column C of dU the bias gradient (0 from spare tiles).
        if (db) std::fill(buf_c + bias_xi * pc + C * ld, buf_c + bias_xi * pc + C * ld + Tb, 1.f);
        const float beta = b0 == n_begin ? 0.f : 1.f;
        for (int64_t xi = 0; xi < positions; ++xi)
          weight_grad_products(ks, buf_f + xi * pf, buf_c + xi * pc, ld, F, db && xi == bias_xi ? C1 : C, Tb,
                               beta, du + xi * F * C1, C1, packed);
        // dx: Z_ξ = U_ξᵀ · (A dY Aᵀ)_ξ into the V buffer (its products are done), then each image's
        // B Z Bᵀ, overlapping tiles added (the adjoint of the forward's transforms).
        if (dx) {
          winograd_products(ks, packed_u_t, C, F, positions, buf_f, pf, Tb, ld, buf_c, pc);
          for (int64_t i = 0; i < nb; i += across)
            tf.input_grad(buf_c + i / across * Tg, ld, pc, pg, C, dx + (b0 + i) * CHW, CHW, std::min(across, nb - i),
                          scratch_dx);
        }
      }
      float* pdw = partials + chunk * partial_size;
      weight_grad_transform(px.tile, du, F * C1, F, C1, C, pdw);  // (f, k, c) order: see the sum below
      if (db)
        for (int64_t f = 0; f < F; ++f) pdw[F * K + f] = du[(bias_xi * F + f) * C1 + C];
    }
  });

  // Sum the chunk partials in chunk order; threads split the (independent) output elements.
  // Partial i < F·K is dw's element (f, c, k) for i = (f·9 + k)·C + c.
  const int64_t total = db ? partial_size : F * K;
  const int out_parts = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(get_num_threads(), total / 4096)));
  for_each_part(total, out_parts, [&](int, int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      float s = 0.f;
      for (int64_t chunk = 0; chunk < chunks; ++chunk) s += partials[chunk * partial_size + i];
      if (i < F * K) dw[i / K * K + (i % C) * 9 + i / C % 9] += s;
      else db[i - F * K] += s;
    }
  });
}

}  // namespace cpu
}  // namespace dropnet
