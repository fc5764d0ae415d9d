// Image augmentation on NCHW float batches, keyed by Philox streams: sample i of a batch draws
// words 8g .. 8g+7 of stream (seed, stream) (blocks 2g and 2g+1), g = first_sample + i its
// position in the whole batch (a data-parallel rank passes the global position of its first
// row), so what happens to a sample depends only on (seed, stream, g): never on the number of
// threads, of ranks, or on the other samples.
//
// Integer draws: a range [0, m) is taken as (word · m) >> 32 (exact integer arithmetic, the same
// in the numpy reference of the tests).
//   word 0, 1: random crop with zero padding `pad`: the output is the H × W window at offset
//              (dy, dx) ∈ [0, 2·pad]² of the image padded by `pad` zeros on every side.
//   word 2:    horizontal flip when flip is on and word 2 < 2^31 (probability 1/2).
//   word 3:    random erasing when erase_p > 0 and word 3 < keep_threshold(1 - erase_p)
//              (probability erase_p); the rectangle has height 1 + (w4 · eh_max) >> 32 and width
//              1 + (w5 · ew_max) >> 32, eh_max = max(1, floor(H · erase_max)), likewise ew_max,
//              and top-left corner ((w6 · (H − eh + 1)) >> 32, (w7 · (W − ew + 1)) >> 32); its
//              cells of every channel are set to 0.
// Crop, then flip (of the cropped window), then erasing: one pass writes each output once.
#pragma once
#include <cstdint>

namespace dropnet {
namespace cpu {

struct AugmentSpec {
  int64_t pad = 0;         // random crop padding (0: no crop)
  bool flip = false;       // random horizontal flip
  double erase_p = 0.0;    // probability of random erasing (0: never)
  double erase_max = 0.0;  // largest erased side as a fraction of the image side, in (0, 1]
};

// x, y: n × c × h × w floats (must not alias). Threads split the samples.
void augment_images(const float* x, float* y, int64_t n, int64_t c, int64_t h, int64_t w, const AugmentSpec& spec,
                    uint64_t seed, uint64_t stream, uint64_t first_sample = 0);

}  // namespace cpu
}  // namespace dropnet
