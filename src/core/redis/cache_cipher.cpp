#include "euphoria/core/redis/cache_cipher.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/kdf.h>
#include <openssl/rand.h>

#include <memory>
#include <stdexcept>

namespace euphoria::core::redis {

namespace {

constexpr std::size_t nonce_bytes = 12;
constexpr std::size_t tag_bytes = 16;

struct FreeCipher {
    void operator()(EVP_CIPHER_CTX* c) const noexcept { EVP_CIPHER_CTX_free(c); }
};
using CipherCtx = std::unique_ptr<EVP_CIPHER_CTX, FreeCipher>;
struct FreePkey {
    void operator()(EVP_PKEY_CTX* c) const noexcept { EVP_PKEY_CTX_free(c); }
};

CipherCtx new_cipher() {
    CipherCtx c(EVP_CIPHER_CTX_new());
    if (!c) throw std::bad_alloc();
    return c;
}

const unsigned char* bytes(std::string_view s) {
    return reinterpret_cast<const unsigned char*>(s.data());
}

int length(std::size_t n) {
    if (n > static_cast<std::size_t>(INT32_MAX)) throw std::length_error("value too large to seal");
    return static_cast<int>(n);
}

std::string hex(const unsigned char* p, std::size_t n) {
    static constexpr char digits[] = "0123456789abcdef";
    std::string out(n * 2, '0');
    for (std::size_t i = 0; i < n; ++i) {
        out[2 * i] = digits[p[i] >> 4];
        out[2 * i + 1] = digits[p[i] & 15];
    }
    return out;
}

}  // namespace

CacheCipher::CacheCipher(const api::Secret& api_key, std::string_view tenant) {
    std::unique_ptr<EVP_PKEY_CTX, FreePkey> ctx(EVP_PKEY_CTX_new_id(EVP_PKEY_HKDF, nullptr));
    if (!ctx) throw std::bad_alloc();
    // The salt names the purpose and its version; the info binds the tenant, so one
    // key used for two tenants still gives two unrelated caches.
    static constexpr std::string_view salt = "euphoriafs shared cache v1";
    const std::string info = "tenant " + std::string(tenant);
    const auto key = api_key.reveal();
    std::array<unsigned char, 64> out{};
    std::size_t out_len = out.size();
    if (EVP_PKEY_derive_init(ctx.get()) != 1 ||
        EVP_PKEY_CTX_set_hkdf_md(ctx.get(), EVP_sha256()) != 1 ||
        EVP_PKEY_CTX_set1_hkdf_salt(ctx.get(), bytes(salt), length(salt.size())) != 1 ||
        EVP_PKEY_CTX_set1_hkdf_key(ctx.get(), bytes(key), length(key.size())) != 1 ||
        EVP_PKEY_CTX_add1_hkdf_info(ctx.get(), bytes(info), length(info.size())) != 1 ||
        EVP_PKEY_derive(ctx.get(), out.data(), &out_len) != 1 || out_len != out.size()) {
        throw std::runtime_error("HKDF-SHA256 failed");
    }
    std::copy(out.begin(), out.begin() + 32, seal_key_.begin());
    std::copy(out.begin() + 32, out.end(), name_key_.begin());
    OPENSSL_cleanse(out.data(), out.size());
}

CacheCipher::~CacheCipher() {
    OPENSSL_cleanse(seal_key_.data(), seal_key_.size());
    OPENSSL_cleanse(name_key_.data(), name_key_.size());
}

std::string CacheCipher::name_id(std::string_view name) const {
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    if (!HMAC(EVP_sha256(), name_key_.data(), static_cast<int>(name_key_.size()), bytes(name),
              name.size(), mac, &mac_len)) {
        throw std::runtime_error("HMAC-SHA256 failed");
    }
    return hex(mac, mac_len);
}

std::string CacheCipher::random_hex(std::size_t n) {
    std::string raw(n, '\0');
    if (RAND_bytes(reinterpret_cast<unsigned char*>(raw.data()), length(n)) != 1) {
        throw std::runtime_error("no random bytes (RAND_bytes)");
    }
    return hex(bytes(raw), n);
}

std::string CacheCipher::seal(std::string_view context, std::string_view plain) const {
    std::string out(nonce_bytes + plain.size() + tag_bytes, '\0');
    auto* o = reinterpret_cast<unsigned char*>(out.data());
    if (RAND_bytes(o, static_cast<int>(nonce_bytes)) != 1) throw std::runtime_error("no random bytes (RAND_bytes)");
    auto c = new_cipher();
    int n = 0;
    if (EVP_EncryptInit_ex(c.get(), EVP_aes_256_gcm(), nullptr, seal_key_.data(), o) != 1 ||
        EVP_EncryptUpdate(c.get(), nullptr, &n, bytes(context), length(context.size())) != 1 ||
        EVP_EncryptUpdate(c.get(), o + nonce_bytes, &n, bytes(plain), length(plain.size())) != 1 ||
        EVP_EncryptFinal_ex(c.get(), o + nonce_bytes + n, &n) != 1 ||
        EVP_CIPHER_CTX_ctrl(c.get(), EVP_CTRL_GCM_GET_TAG, static_cast<int>(tag_bytes),
                            o + nonce_bytes + plain.size()) != 1) {
        throw std::runtime_error("AES-256-GCM failed");
    }
    return out;
}

std::optional<std::string> CacheCipher::open(std::string_view context, std::string_view sealed) const {
    if (sealed.size() < nonce_bytes + tag_bytes) return std::nullopt;
    const auto* s = bytes(sealed);
    const std::size_t body = sealed.size() - nonce_bytes - tag_bytes;
    std::string plain(body, '\0');
    auto* p = reinterpret_cast<unsigned char*>(plain.data());
    auto c = new_cipher();
    int n = 0;
    // The tag is set from a copy: the ctrl takes a non-const pointer.
    std::array<unsigned char, tag_bytes> tag{};
    std::copy(s + nonce_bytes + body, s + sealed.size(), tag.begin());
    if (EVP_DecryptInit_ex(c.get(), EVP_aes_256_gcm(), nullptr, seal_key_.data(), s) != 1 ||
        EVP_DecryptUpdate(c.get(), nullptr, &n, bytes(context), length(context.size())) != 1 ||
        EVP_DecryptUpdate(c.get(), p, &n, s + nonce_bytes, length(body)) != 1 ||
        EVP_CIPHER_CTX_ctrl(c.get(), EVP_CTRL_GCM_SET_TAG, static_cast<int>(tag_bytes), tag.data()) != 1 ||
        EVP_DecryptFinal_ex(c.get(), p + n, &n) != 1) {
        api::wipe_string(plain);
        return std::nullopt;
    }
    return plain;
}

}  // namespace euphoria::core::redis
