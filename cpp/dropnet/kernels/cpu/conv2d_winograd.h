// Winograd F(2×2, 3×3) convolution for 3×3, stride 1, dilation 1, ungrouped layers: the path
// conv2d_forward / conv2d_backward take when winograd_applies()
// (docs/design.md, "Convolution paths"). Each 2×2 output tile comes from a 4×4 input tile with 16 multiplies per (filter,
// channel) instead of 36, so the three products of a training step need 2.25× fewer flops than
// im2col + GEMM (less the tiles that overhang an odd or padded edge). Planes from 6 × 6 up take
// F(4×4, 3×3) instead (winograd_tile): 4×4 output tiles from 6×6 input tiles, 36 positions, 36
// multiplies per 16 outputs (4× fewer than im2col); the same structure with 6×6 transforms
// (conv2d_winograd4_body.h). Below, the F(2×2) sizes.
//   U = G g Gᵀ  (4×4 per filter and channel, once per call)
//   V = Bᵀ d B  (4×4 per input tile and channel)
//   M_ξ = U_ξ · V_ξ for each of the 16 positions ξ: (F × C) · (C × tiles) on the GEMM micro-kernel
//   Y = Aᵀ M A  (2×2 per output tile), then + bias, then the activation (the GEMM epilogue's)
// Input gradient: the adjoint, Z_ξ = U_ξᵀ · (A dY Aᵀ)_ξ, then B Z Bᵀ per tile, overlapping tiles added.
// Weight gradient: dU_ξ = Σ_tiles (A dY Aᵀ)_ξ · V_ξᵀ per chunk of kConvImagesPerChunk images
// (sgemm over the chunk's tiles in blocks of a fixed number of images), dw_chunk = Gᵀ dU G,
// chunks summed in order (docs/design.md, "Canonical reduction orders").
// The transforms are additions, subtractions and products by constants in a fixed order, written
// once (conv2d_winograd_body.h, conv2d_winograd4_body.h) and compiled per ISA unit without
// contraction: every ISA path and every thread count gives the same bits.
#pragma once
#include <algorithm>
#include <cstdint>

#include "dropnet/kernels/cpu/gemm.h"
#include "dropnet/kernels/cpu/im2col.h"

namespace dropnet {
namespace cpu {

// One stride-1 3×3 correlation as the transforms see it: in_channels planes of H × W read with
// leading pads (pad_top, pad_left) (anything outside the plane reads 0), out planes OH × OW, cut
// into TH × TW tiles of tile × tile (the last row / column may overhang the output). `across` images sit
// side by side in one tile grid (a group): image a's tiles are columns [a·TW, a·TW + TW) of each
// tile row; where the geometry does not pack, each tile row has one spare tile at its end
// (conv2d_winograd_body.h): tiles() = TH · S() columns of every GEMM, S() = across · TW, + 1
// without packs(). across > 1 needs packs(): see there.
struct WinogradPlan {
  int64_t in_channels = 0, H = 0, W = 0;
  int64_t pad_top = 0, pad_left = 0;
  int64_t OH = 0, OW = 0;
  int64_t TH = 0, TW = 0;
  int64_t across = 1;
  int64_t tile = 2;  // output tile side m: F(m×m, 3×3) on (m + 2) × (m + 2) input tiles, m = 2 or 4
  int64_t positions() const { return (tile + 2) * (tile + 2); }  // ξ: the transformed tile
  int64_t phases() const { return tile * tile; }  // a plane split by row and column mod tile
  int64_t S() const { return across * TW + (packs() ? 0 : 1); }
  int64_t tiles() const { return TH * S(); }
  int64_t tiles_padded() const { return (tiles() + 7) / 8 * 8; }
  // Whether images may share a tile row without spare tiles between them: with an output width
  // that is not a multiple of the tile the last tile of an image overhangs by at least one output
  // column, and with at least one pad column on both sides the next image may start tile·TW
  // padded columns on (on this one's right pad, or just past it). No value of one image then
  // depends on another's: the next image's data meets only the last input column of this image's
  // last tile, which only its last output column reads (an overhang: dropped, its dy 0, the output
  // planes getting zero columns between images), so A dY Aᵀ has 0 in the column that meets the
  // next image's data, in the weight gradient's products and in the input gradient's B Z Bᵀ alike.
  // The same holds at the end of a tile row, so packed groups have no spare tile: the last tile
  // reads, as its last two input columns, the left pad and first column of image 0 in the next
  // tile row's planes, and only that overhang column reads them (at 7 × 7 a block's tiles become
  // a whole number of the micro-kernel's 32-column panels: 128 for F(2×2) and 8 images, 32 and
  // 64 for F(4×4) and 8 and 16, where the spare left 4- and 2-column tails).
  bool packs() const { return OW % tile != 0 && pad_left >= 1 && pad_left + W <= OW + 1; }
};

WinogradPlan winograd_plan(int64_t in_channels, int64_t H, int64_t W, int64_t pad_top, int64_t pad_left, int64_t OH,
                           int64_t OW, int64_t tile);

// The Winograd path needs at least kWinogradMinChannels input channels and at most
// kWinogradMaxFiltersPerChannel filters per input channel: with fewer channels or relatively more
// filters the transforms (which scale with C + F per tile) outweigh the multiplies saved (which
// scale with C · F). Measured: docs/design.md, "Convolution paths".
constexpr int64_t kWinogradMinChannels = 16;
constexpr int64_t kWinogradMaxFiltersPerChannel = 2;

// The path rule: a function of the geometry alone (never of timings), so every machine and ISA
// path takes the same path and trains to the same bits.
bool winograd_applies(const ConvGeometry& g, int64_t F);
// The output tile of the Winograd path, a function of the geometry alone like the rule above:
// F(4×4, 3×3) (2.25 multiplies per output and filter-channel pair instead of 4) where both output
// sides are at least kWinograd4MinSide, else F(2×2, 3×3). Its transforms cost more per tile and
// a 5 × 5 plane needs 4 tiles of 4 × 4 (more overhang than output), so planes that small measured
// slower; from 6 × 6 up it measured faster or equal (docs/design.md, "Convolution paths").
constexpr int64_t kWinograd4MinSide = 6;
int64_t winograd_tile(const ConvGeometry& g, int64_t F);

int64_t winograd_forward_workspace(const ConvGeometry& g, int64_t F, int threads);
// conv2d_forward's contract (y = act(conv(x, w) + bias)); requires winograd_applies(g, F).
void winograd_forward(const float* x, int64_t N, const ConvGeometry& g, const float* w, int64_t F, const float* bias,
                      Activation activation, float leaky_slope, float* y, float* workspace, int64_t workspace_floats);

int64_t winograd_backward_workspace(const ConvGeometry& g, int64_t N, int64_t F, int threads);
// conv2d_backward's contract (dx overwritten, dw / db accumulated); requires winograd_applies(g, F).
void winograd_backward(const float* dy, const float* x, int64_t N, const ConvGeometry& g, const float* w, int64_t F,
                       float* dx, float* dw, float* db, float* workspace, int64_t workspace_floats);

// The per-ISA transform bodies (conv2d_winograd_body.h), each over one group of `count` images
// (count <= across; the missing ones read as 0), `stride` floats apart in x, dy, y or dx.
// Transformed tensors are ξ-major: element (ξ, row, t) at [ξ·plane + row·ld + t], the callers
// pointing at the group's first tile. Tile t is (t / S, t % S), S = p.S().
// Scratch: each transform gets its own region (sizes below); the input and grad_output regions
// must be zeroed before a thread's first call with a plan and then kept for calls with that plan
// only (the transforms write the entries inside the planes and rely on the padding staying 0).
struct WinogradTransforms {
  // V = Bᵀ d B of every tile of every channel of the group's images x (in_channels × H × W each).
  void (*input)(const float* x, int64_t stride, int64_t count, const WinogradPlan& p, float* v, int64_t ld,
                int64_t plane, float* scratch);
  // y (channels × OH × OW each image) = Aᵀ M A (+ bias[channel] when bias is not null).
  void (*output)(const float* m, int64_t ld, int64_t plane, const WinogradPlan& p, int64_t channels,
                 const float* bias, float* y, int64_t stride, int64_t count, float* scratch);
  // u = A dY Aᵀ of every 2 × 2 output tile of dy (channels × OH × OW each image; 0 past the edge).
  void (*grad_output)(const float* dy, int64_t stride, int64_t count, const WinogradPlan& p, int64_t channels,
                      float* u, int64_t ld, int64_t plane, float* scratch);
  // dx (channels × H × W each image) = the adjoint of input: B Z Bᵀ of every tile, overlapping
  // tiles added (conv2d_winograd_body.h); z is ξ-major like v, channels rows.
  void (*input_grad)(const float* z, int64_t ld, int64_t plane, const WinogradPlan& p, int64_t channels, float* dx,
                     int64_t stride, int64_t count, float* scratch);
  // u[ξ·(F·C) + f·C + c] (transposed: u[ξ·(F·C) + c·F + f]) = (G w_fc Gᵀ)_ξ of the filters w
  // (F × C × 3 × 3).
  void (*weights)(const float* w, int64_t F, int64_t C, bool transposed, float* u);
  // out[(r·9 + k)·Q + q] = (Gᵀ X G)[k] of the positions' X read at du[ξ·stride + r·ld + q], r < R, q < Q.
  void (*weight_grad)(const float* du, int64_t stride, int64_t R, int64_t ld, int64_t Q, float* out);
};
// Rows of transformed tensors (ld) need 16 floats of slack past the block's last tile.
// The F(4×4) bodies keep the first pass of each transform in up to 36 lines of tiles_padded(),
// then the phase offsets of one plane (conv2d_winograd4_body.h, phase_offsets4), past each region.
inline int64_t winograd_line_buffer(const WinogradPlan& p) {
  return p.tile == 4 ? 36 * p.tiles_padded() + std::max(p.H * p.W, p.OH * p.OW) : 0;
}
inline int64_t winograd_input_scratch(const WinogradPlan& p) {
  return p.in_channels * p.phases() * (p.tiles_padded() + 2 * p.S()) + winograd_line_buffer(p);
}
inline int64_t winograd_output_scratch(const WinogradPlan& p) {
  return p.phases() * p.tiles_padded() + winograd_line_buffer(p);
}
inline int64_t winograd_grad_output_scratch(const WinogradPlan& p, int64_t channels) {
  return channels * p.phases() * p.tiles_padded() + winograd_line_buffer(p);
}
// One plane of input_grad's scratch: S + 1 leading zeros, the tiles and a tile row of zeros past them,
// rounded up to whole lines. The scratch: positions() planes of D and phases() planes of the sums.
inline int64_t winograd_input_grad_plane(const WinogradPlan& p) {
  return ((p.S() + 1) + (p.TH + 1) * p.S() + 16 + 15) / 16 * 16;
}
inline int64_t winograd_input_grad_scratch(const WinogradPlan& p) {
  return (p.positions() + p.phases()) * winograd_input_grad_plane(p) + winograd_line_buffer(p);
}

// The bodies of F(tile×tile, 3×3), tile 2 or 4.
WinogradTransforms winograd_transforms_scalar(int64_t tile);
WinogradTransforms winograd_transforms_avx2(int64_t tile);
WinogradTransforms winograd_transforms_avx512(int64_t tile);

}  // namespace cpu
}  // namespace dropnet
