#include "euphoria/api/trust_store.hpp"

#include <curl/curl.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

#include <cerrno>
#include <new>
#include <utility>

#include "euphoria/api/error.hpp"

namespace euphoria::api {

struct TrustStore::Store {
    X509_STORE* handle = X509_STORE_new();
    int certificates = 0;
    std::chrono::steady_clock::time_point built = std::chrono::steady_clock::now();

    Store() {
        if (!handle) throw std::bad_alloc();
    }
    ~Store() { X509_STORE_free(handle); }
    Store(const Store&) = delete;
    Store& operator=(const Store&) = delete;

    // Certificates (and CRLs) read from a PEM file; 0 if it has none or is unreadable.
    int load_file(const std::string& path) {
        X509_LOOKUP* lookup = X509_STORE_add_lookup(handle, X509_LOOKUP_file());
        if (!lookup) throw std::bad_alloc();
        const int n = X509_load_cert_crl_file(lookup, path.c_str(), X509_FILETYPE_PEM);
        return n > 0 ? n : 0;
    }
};

TrustStore::TrustStore(TrustSources sources)
    : sources_(std::move(sources)), store_(build(sources_)) {}

TrustStore::~TrustStore() = default;

TrustSources TrustStore::defaults(std::string extra_ca_file) {
    TrustSources s;
    s.extra_ca_file = std::move(extra_ca_file);
    CURL* probe = curl_easy_init();
    if (!probe) throw std::bad_alloc();
    char* bundle = nullptr;
    char* path = nullptr;
    curl_easy_getinfo(probe, CURLINFO_CAINFO, &bundle);
    curl_easy_getinfo(probe, CURLINFO_CAPATH, &path);
    if (bundle) s.system_bundle = bundle;
    if (path) s.system_path = path;
    curl_easy_cleanup(probe);
    return s;
}

std::shared_ptr<TrustStore::Store> TrustStore::build(const TrustSources& sources) {
    auto store = std::make_shared<Store>();
    if (!sources.system_bundle.empty()) store->certificates += store->load_file(sources.system_bundle);
    if (!sources.extra_ca_file.empty()) {
        const int n = store->load_file(sources.extra_ca_file);
        if (n == 0) {
            throw ApiError(EINVAL, ErrorKind::config,
                           "cafile " + sources.extra_ca_file + " holds no PEM certificate");
        }
        store->certificates += n;
    }
    if (!sources.system_path.empty()) {
        X509_LOOKUP* dir = X509_STORE_add_lookup(store->handle, X509_LOOKUP_hash_dir());
        if (!dir) throw std::bad_alloc();
        X509_LOOKUP_add_dir(dir, sources.system_path.c_str(), X509_FILETYPE_PEM);
    }
    // As libcurl sets on its own store: an intermediate in the bundle may anchor.
    X509_STORE_set_flags(store->handle, X509_V_FLAG_PARTIAL_CHAIN);
    return store;
}

void TrustStore::install(void* ssl_ctx) {
    std::shared_ptr<Store> store;
    {
        std::lock_guard lock(mutex_);
        if (std::chrono::steady_clock::now() - store_->built >= refresh_after) {
            try {
                store_ = build(sources_);
            } catch (const std::exception&) {
                // Keep what was trusted until now; try again tomorrow.
                store_->built = std::chrono::steady_clock::now();
            }
        }
        store = store_;
    }
    // Takes its own reference: the store outlives a refresh while connections use it.
    SSL_CTX_set1_cert_store(static_cast<SSL_CTX*>(ssl_ctx), store->handle);
}

int TrustStore::certificates() const {
    std::lock_guard lock(mutex_);
    return store_->certificates;
}

}  // namespace euphoria::api
