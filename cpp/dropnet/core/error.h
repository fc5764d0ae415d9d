// Error types of the C++ core. Bindings translate them: ValueError -> Python ValueError (shapes,
// ranges), TypeError -> Python TypeError (dtypes). A library never calls exit() or abort().
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>

namespace dropnet {

class ValueError : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

class TypeError : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

template <class... Parts>
std::string str_concat(const Parts&... parts) {
  std::ostringstream s;
  (s << ... << parts);
  return s.str();
}

}  // namespace dropnet

// Check-and-throw in one place. Messages name the argument, what was expected and what came.
#define DROPNET_CHECK(cond, ...)                                      \
  do {                                                                \
    if (!(cond)) throw ::dropnet::ValueError(::dropnet::str_concat(__VA_ARGS__)); \
  } while (0)

#define DROPNET_CHECK_TYPE(cond, ...)                                 \
  do {                                                                \
    if (!(cond)) throw ::dropnet::TypeError(::dropnet::str_concat(__VA_ARGS__)); \
  } while (0)
