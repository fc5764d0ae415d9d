// Winograd F(2×2, 3×3) and F(4×4, 3×3) drivers: blocking, threads, the weight-gradient reduction.
// The transform bodies (the weights' included: conv2d_winograd_weights_body.h) are in
// conv2d_winograd_body.h (the scalar copy: conv2d_winograd_scalar.cpp).
#include "dropnet/kernels/cpu/conv2d_winograd.h"

#include <algorithm>

#include "dropnet/core/cpu_features.h"
#include "dropnet/core/denormals.h"
#include "dropnet/core/parallel.h"
#include "dropnet/core/threading.h"
#include "dropnet/kernels/cpu/conv2d.h"
#include "dropnet/kernels/cpu/gemm_kernels.h"

namespace dropnet {
namespace cpu {

namespace {

// ξ = (1, 1), where A dY Aᵀ is the sum of the output tile's dy (row and column 1 of A are all ones).
int64_t bias_position(const WinogradPlan& p) { return p.tile + 3; }

// Images a block transforms before its GEMMs: the largest power of two up to a cap (the
// backward's: kConvImagesPerChunk, so blocks tile a chunk) whose transformed tensors stay within
// kBlockFloats (1 MiB, half a core's L2 here; 2 MiB measured slower), doubled while the block has
// fewer than kMinBlockTiles tiles (the GEMMs' columns, on the micro-kernel's 32-column panels).
// The floors were measured when F(2 × 2) ran the 7 × 7 layers with a spare tile per tile row:
// 4 images (68 tiles) faster than 2 (36) at 128 → 128; where the images sit side by side
// (WinogradPlan::packs) 8 (132) 1-7 % faster than 4 at 64 → 128 and 128 → 128, 1 and 2 threads,
// the weight gradient's products running twice the depth per accumulator load. See
// docs/design.md, "Convolution paths".
constexpr int64_t kBlockFloats = int64_t{1} << 18;
constexpr int64_t kMinBlockTiles = 64;
constexpr int64_t kMinPackedBlockTiles = 128;
// The forward's cap. No sum runs across the images of its blocks, so they change no bit. With
// F(4 × 4) at 7 × 7, 8 images are 32 tiles; 16 (then 66 against 34, with the spare tile)
// measured 15-18 % faster at 64 → 128 and 128 → 128, 1 thread, and 32 or 64 no faster.
constexpr int64_t kForwardMaxBlockImages = 16;

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
int64_t images_per_block(const WinogradPlan& p, int64_t rows, int64_t cap) {
  int64_t b = cap;
  while (b > 1 && p.positions() * rows * block_tiles(group_plan(p, b), b) > kBlockFloats) b /= 2;
  const int64_t min_tiles = p.packs() ? kMinPackedBlockTiles : kMinBlockTiles;
  while (b < cap && block_tiles(group_plan(p, b), b) < min_tiles) b *= 2;
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

// Images per block: the largest power of two up to kForwardMaxBlockImages whose transformed
// tensors (the positions of C + F rows, one image's tiles each) stay within kBlockFloats, doubled
// to the tile floor (images_per_block); side by side (group_plan) they take no more.
int64_t forward_block(const WinogradPlan& p, int64_t F) {
  return images_per_block(p, p.in_channels + F, kForwardMaxBlockImages);
}

int64_t forward_per_part(const WinogradPlan& p, int64_t F) {
  const int64_t block = forward_block(p, F), Tb = block * p.tiles();
  return p.positions() * (plane_stride(p.in_channels * row_stride(Tb)) + plane_stride(F * row_stride(Tb))) +
         correlate_scratch(group_plan(p, block));
}

// Backward blocks: the image count whose transformed tensors (V of x and the products' Z: C + 1
// rows, A dY Aᵀ: F rows, 16 positions) stay within kBlockFloats.
int64_t backward_block(const WinogradPlan& px, int64_t F) {
  return images_per_block(px, px.in_channels + F, kConvImagesPerChunk);
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
  const WinogradTransforms tf = active_transforms(p.tile);
  tf.weights(w, F, C, false, u);
  float* packed_u = u + positions * F * C;
  pack_filters(gemm_detail::kernels_active(), u, F, C, positions, packed_u);
  const int64_t fixed = positions * F * C + packed_filters_floats(F, C, positions);
  const int64_t block = forward_block(p, F), blocks = (N + block - 1) / block, per_part = forward_per_part(p, F);
  const int parts = conv_parts_for_workspace(blocks, fixed, per_part, workspace_floats);
  GemmEpilogue epilogue;
  epilogue.activation = activation;
  epilogue.leaky_slope = leaky_slope;
  const GemmEpilogue* ep = activation == Activation::identity ? nullptr : &epilogue;
  const int64_t Tb = block * p.tiles();
  const WinogradPlan pg = group_plan(p, block);
  // Per part: V, M, then scratch. Blocks are independent (no sum runs across them), so they go to
  // whichever thread is free.
  const int64_t m_offset = positions * plane_stride(C * row_stride(Tb));
  const int64_t scratch_offset = m_offset + positions * plane_stride(F * row_stride(Tb));
  for_each_item(
      blocks, parts,
      [&](int part) {
        float* scratch = workspace + fixed + part * per_part + scratch_offset;
        std::fill(scratch, scratch + winograd_input_scratch(pg), 0.f);
      },
      [&](int part, int64_t b) {
        DenormalsFlushed flushed;
        float* v = workspace + fixed + part * per_part;
        correlate_images(tf, pg, x, b * block, std::min(N, (b + 1) * block), packed_u, F, bias, ep, y, block, v,
                         v + m_offset, v + scratch_offset);
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
  const WinogradTransforms tf = active_transforms(px.tile);
  if (dx) {
    tf.weights(w, F, C, true, u_t);
    pack_filters(ks, u_t, C, F, positions, packed_u_t);
  }
  const BackwardPart layout = backward_part(px, F);
  const int64_t fixed = chunks * partial_size + positions * C * F + packed_filters_floats(C, F, positions);
  const int parts = conv_parts_for_workspace(chunks, fixed, layout.total(), workspace_floats);
  const int64_t block = backward_block(px, F);
  const WinogradPlan pg = group_plan(px, block);
  const int64_t Tg = pg.tiles(), across = pg.across;

  // Chunks are handed out from both ends: thread 0 takes them in order from the front and adds
  // each chunk's dw into chunk 0's partial as it goes, the order of the final sum (from 0, chunk
  // by chunk), so the same bits (its later chunks are transformed into chunk 1's partial, which
  // stays in cache); the other threads take them from the back, each into its own partial. The
  // final sum starts at `first_rest`, the first chunk thread 0 did not take. (Every chunk written
  // to a partial of its own and summed at the end streamed 16 partials through memory at
  // 128 → 128, 7 × 7, 1 thread.) Where the two ends meet depends on the threads' speed, never the
  // bits: a thread slowed by its neighbours on the machine takes fewer chunks instead of holding
  // up the others (contiguous halves left thread 0 waiting 7 % of the epoch on a 2-core VM).
  const int64_t total = db ? partial_size : F * K;
  int64_t front = 0, back = chunks;  // chunks [front, back) not yet taken
  auto take = [&](bool from_front) {
    int64_t chunk = -1;
#pragma omp critical(dropnet_winograd_chunks)
    if (front < back) chunk = from_front ? front++ : --back;
    return chunk;
  };
  int64_t first_rest = 1;
  for_each_part(parts, parts, [&](int part, int64_t, int64_t) {  // one call per thread
    DenormalsFlushed flushed;
    float* du = workspace + fixed + part * layout.total();  // positions × F × C1
    float* buf_c = du + layout.du;
    float* buf_f = buf_c + layout.buf_c;
    float* packed = buf_f + layout.buf_f;
    float* scratch_x = packed + layout.packed;  // input transform of x, grad_output of dy, input_grad
    float* scratch_dy = scratch_x + winograd_input_scratch(pg);
    float* scratch_dx = scratch_dy + winograd_grad_output_scratch(pg, F);
    std::fill(scratch_x, scratch_dx + winograd_input_grad_scratch(pg), 0.f);
    for (int64_t chunk = take(part == 0); chunk >= 0; chunk = take(part == 0)) {
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
      if (part == 0) first_rest = chunk + 1;
      const bool running = part == 0 && chunk > 0;
      float* pdw = partials + (running ? 1 : chunk) * partial_size;
      tf.weight_grad(du, F * C1, F, C1, C, pdw);  // (f, k, c) order: see the sum below
      if (db)
        for (int64_t f = 0; f < F; ++f) pdw[F * K + f] = du[(bias_xi * F + f) * C1 + C];
      if (running) {
#pragma omp simd
        for (int64_t i = 0; i < total; ++i) partials[i] += pdw[i];
      }
    }
  });

  // Sum the chunk partials in chunk order (chunk 0 already holds chunks [0, first_rest)); threads
  // split the (independent) output elements.
  // Partial i < F·K is dw's element (f, c, k) for i = (f·9 + k)·C + c.
  const int out_parts = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(get_num_threads(), total / 4096)));
  // Per block of kSumBlock elements: the chunk partials added into a buffer chunk by chunk (each
  // element's sum in chunk order from 0, vectorised across elements: per element the loop summing
  // one element over the chunks, with three divisions for its destination, was 3 % of the backward
  // at 128 → 128, 7 × 7), then scattered to dw / db.
  constexpr int64_t kSumBlock = 512;
  for_each_part(total, out_parts, [&](int, int64_t b, int64_t e) {
    float sums[kSumBlock];
    for (int64_t b0 = b; b0 < e; b0 += kSumBlock) {
      const int64_t n = std::min(kSumBlock, e - b0);
      std::fill(sums, sums + n, 0.f);
      for (int64_t chunk = 0; chunk < chunks; chunk = chunk == 0 ? first_rest : chunk + 1) {
        const float* part = partials + chunk * partial_size + b0;
#pragma omp simd
        for (int64_t j = 0; j < n; ++j) sums[j] += part[j];
      }
      int64_t row = b0 / C, c = b0 % C;  // element (row = f·9 + k, c) while below F·K
      for (int64_t j = 0; j < n; ++j) {
        if (row < F * 9) {
          dw[row / 9 * K + c * 9 + row % 9] += sums[j];
          if (++c == C) c = 0, ++row;
        } else {
          db[b0 + j - F * K] += sums[j];
        }
      }
    }
  });
}

}  // namespace cpu
}  // namespace dropnet
