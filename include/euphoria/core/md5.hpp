#pragma once
// MD5 of a download as it arrives, to check it against the listing's MD5 (OpenSSL's
// libcrypto). Not for security: the listing comes over the same channel.

#include <cstddef>
#include <memory>
#include <span>
#include <string>

#include "euphoria/api/sink.hpp"

struct evp_md_ctx_st;

namespace euphoria::core {

class Md5 {
public:
    Md5();
    ~Md5();
    Md5(const Md5&) = delete;
    Md5& operator=(const Md5&) = delete;
    void reset();
    void update(std::span<const std::byte> bytes);
    // Lower-case hex of everything since reset(); then starts afresh.
    std::string hex();

private:
    struct Deleter {
        void operator()(evp_md_ctx_st* ctx) const noexcept;
    };
    std::unique_ptr<evp_md_ctx_st, Deleter> ctx_;
};

// Passes everything on to `inner`, hashing the bytes on the way when `enabled`
// (only a listed name has an MD5 to check: the others pay nothing).
class Md5Sink final : public api::Sink {
public:
    Md5Sink(api::Sink& inner, bool enabled) : inner_(inner), md5_(enabled ? std::make_unique<Md5>() : nullptr) {}
    void reset() override {
        if (md5_) md5_->reset();
        inner_.reset();
    }
    void write(std::span<const std::byte> bytes) override {
        if (md5_) md5_->update(bytes);
        inner_.write(bytes);
    }
    void complete() override { inner_.complete(); }
    // Empty when not enabled.
    std::string hex() { return md5_ ? md5_->hex() : std::string(); }

private:
    api::Sink& inner_;
    std::unique_ptr<Md5> md5_;
};

}  // namespace euphoria::core
