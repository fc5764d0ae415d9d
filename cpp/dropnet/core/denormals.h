// Flush-to-zero / denormals-are-zero for the lifetime of a scope, on the calling thread.
// Training that drifts into denormal floats runs 2x or more slower; kernels that loop over
// floats set this inside each OpenMP thread (MXCSR is per thread) and restore it on exit.
#pragma once
#include <xmmintrin.h>

namespace dropnet {

class DenormalsFlushed {
 public:
  DenormalsFlushed() : saved_(_mm_getcsr()) { _mm_setcsr(saved_ | 0x8040); }  // FTZ | DAZ
  ~DenormalsFlushed() { _mm_setcsr(saved_); }
  DenormalsFlushed(const DenormalsFlushed&) = delete;
  DenormalsFlushed& operator=(const DenormalsFlushed&) = delete;

 private:
  unsigned int saved_;
};

}  // namespace dropnet
