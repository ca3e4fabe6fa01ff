#include "euphoria/core/md5.hpp"

#include <openssl/evp.h>

#include <new>

namespace euphoria::core {

void Md5::Deleter::operator()(EVP_MD_CTX* ctx) const noexcept { EVP_MD_CTX_free(ctx); }

Md5::Md5() : ctx_(EVP_MD_CTX_new()) {
    if (!ctx_) throw std::bad_alloc();
    reset();
}

Md5::~Md5() = default;

void Md5::reset() {
    if (EVP_DigestInit_ex(ctx_.get(), EVP_md5(), nullptr) != 1) throw std::bad_alloc();
}

void Md5::update(std::span<const std::byte> bytes) {
    if (EVP_DigestUpdate(ctx_.get(), bytes.data(), bytes.size()) != 1) throw std::bad_alloc();
}

std::string Md5::hex() {
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int size = 0;
    if (EVP_DigestFinal_ex(ctx_.get(), digest, &size) != 1) throw std::bad_alloc();
    static constexpr char digits[] = "0123456789abcdef";
    std::string out;
    for (unsigned i = 0; i < size; ++i) {
        out.push_back(digits[digest[i] >> 4]);
        out.push_back(digits[digest[i] & 15]);
    }
    reset();
    return out;
}

}  // namespace euphoria::core
