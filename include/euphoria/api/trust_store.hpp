#pragma once
// The CAs a connection trusts, parsed once and shared by every connection. libcurl
// otherwise parses its CA bundle (about 140 certificates, ~30 ms of CPU with OpenSSL
// 3) for each new connection, and a cold read pays that before its first byte.

#include <chrono>
#include <memory>
#include <mutex>
#include <string>

namespace euphoria::api {

struct TrustSources {
    std::string system_bundle;  // PEM file, libcurl's default CAINFO; may be empty
    std::string system_path;    // hashed directory, libcurl's default CAPATH; may be empty
    std::string extra_ca_file;  // trusted as well (-o cafile); empty for none
};

class TrustStore {
public:
    // Throws ApiError (config) if extra_ca_file is given but holds no certificate.
    // A missing system bundle or directory is not an error here: the handshake then
    // fails verification, with libcurl's message, as it would have by itself.
    explicit TrustStore(TrustSources sources);
    ~TrustStore();
    TrustStore(const TrustStore&) = delete;
    TrustStore& operator=(const TrustStore&) = delete;

    // libcurl's and OpenSSL's defaults, as this libcurl would have used them.
    static TrustSources defaults(std::string extra_ca_file);

    // Makes an OpenSSL SSL_CTX (void* keeps OpenSSL out of this header) trust this
    // store. Thread-safe. The store is read again from its sources once a day, as
    // libcurl's own CA cache does, so a long-lived mount sees CA updates.
    void install(void* ssl_ctx);

    // Certificates parsed from the bundle and the extra file (not the directory,
    // which OpenSSL reads on demand).
    int certificates() const;

private:
    struct Store;
    static std::shared_ptr<Store> build(const TrustSources& sources);

    const TrustSources sources_;
    static constexpr std::chrono::hours refresh_after{24};
    // Guards store_. Leaf lock; OpenSSL's own store lock is taken under it.
    mutable std::mutex mutex_;
    std::shared_ptr<Store> store_;
};

}  // namespace euphoria::api
