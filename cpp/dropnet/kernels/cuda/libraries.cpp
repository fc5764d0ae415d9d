// Run-time loading of the NVIDIA libraries (libraries.h).
#include "dropnet/kernels/cuda/libraries.h"

#include <dlfcn.h>

#include <mutex>

namespace dropnet {
namespace cuda {

DynamicLibrary::DynamicLibrary(const std::vector<std::string>& sonames) {
  // dlerror's message is per thread and overwritten by the next failure: read it right away. The
  // mutex keeps two threads' opens (and messages) apart.
  static std::mutex dl_mutex;
  std::lock_guard<std::mutex> lock(dl_mutex);
  for (const std::string& name : sonames) {
    dlerror();
    handle_ = dlopen(name.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (handle_) {
      soname_ = name;
      reason_.clear();
      return;
    }
    const char* msg = dlerror();
    reason_ += (reason_.empty() ? "" : "; ") + name + ": " + (msg ? msg : "dlopen failed");
  }
  if (sonames.empty()) reason_ = "no soname to try";
}

DynamicLibrary::~DynamicLibrary() {
  if (handle_) dlclose(handle_);
}

void* DynamicLibrary::symbol(const char* name, std::string* why) const {
  if (!handle_) {
    if (why) *why = "not loaded (" + reason_ + ")";
    return nullptr;
  }
  dlerror();
  void* p = dlsym(handle_, name);
  if (!p && why) {
    const char* msg = dlerror();
    *why = soname_ + " has no symbol " + name + (msg ? std::string(": ") + msg : std::string());
  }
  return p;
}

std::vector<std::string> library_sonames(NvidiaLibrary lib) {
  switch (lib) {
    case NvidiaLibrary::cublaslt: return {"libcublasLt.so.13", "libcublasLt.so.12"};
    case NvidiaLibrary::cusparse: return {"libcusparse.so.13", "libcusparse.so.12"};
    case NvidiaLibrary::cudnn: return {"libcudnn.so.9", "libcudnn.so.8"};
  }
  return {};
}

const char* library_name(NvidiaLibrary lib) {
  switch (lib) {
    case NvidiaLibrary::cublaslt: return "cuBLASLt";
    case NvidiaLibrary::cusparse: return "cuSPARSE";
    case NvidiaLibrary::cudnn: return "cuDNN";
  }
  return "?";
}

const DynamicLibrary& nvidia_library(NvidiaLibrary lib) {
  // Opened once, thread-safely, and kept for the process: a library that handles or kernels still
  // use must not be closed by a static destructor at exit before them.
  constexpr int kLibraries = 3;
  static std::once_flag once[kLibraries];
  static const DynamicLibrary* opened[kLibraries] = {};
  const int i = static_cast<int>(lib);
  std::call_once(once[i], [&] { opened[i] = new DynamicLibrary(library_sonames(lib)); });
  return *opened[i];
}

}  // namespace cuda
}  // namespace dropnet
