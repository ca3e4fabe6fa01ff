#include "euphoria/api/secret.hpp"

#include <cstring>
#include <strings.h>

namespace euphoria::api {

void wipe_string(std::string& s) noexcept {
    // explicit_bzero cannot be optimised away, unlike a memset before free.
    s.resize(s.capacity());
    explicit_bzero(s.data(), s.size());
    s.clear();
}

Secret& Secret::operator=(const Secret& other) {
    if (this != &other) {
        wipe();
        value_ = other.value_;
    }
    return *this;
}

Secret::Secret(Secret&& other) noexcept : value_(std::move(other.value_)) { other.wipe(); }

Secret& Secret::operator=(Secret&& other) noexcept {
    if (this != &other) {
        wipe();
        value_ = std::move(other.value_);
        other.wipe();
    }
    return *this;
}

void Secret::wipe() noexcept { wipe_string(value_); }

}  // namespace euphoria::api
