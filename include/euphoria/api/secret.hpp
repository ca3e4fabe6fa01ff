#pragma once
// The tenant's key opens every recording of the tenant. It lives in this wrapper so
// that it cannot be printed by accident and is wiped from memory when dropped.

#include <string>
#include <string_view>

namespace euphoria::api {

class Secret {
public:
    Secret() = default;
    explicit Secret(std::string value) : value_(std::move(value)) {}
    Secret(const Secret& other) : value_(other.value_) {}
    Secret& operator=(const Secret& other);
    Secret(Secret&& other) noexcept;
    Secret& operator=(Secret&& other) noexcept;
    ~Secret() { wipe(); }

    // Deliberately verbose, so every use of the raw key is easy to find.
    std::string_view reveal() const noexcept { return value_; }
    bool empty() const noexcept { return value_.empty(); }
    void wipe() noexcept;

private:
    std::string value_;
};

// Zeroes a string's whole buffer (capacity, not just size), then clears it.
void wipe_string(std::string& s) noexcept;

}  // namespace euphoria::api
