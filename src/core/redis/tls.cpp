#include "tls.hpp"

#include "euphoria/core/redis/connection.hpp"

#ifdef EUPHORIA_REDIS_TLS
#include <arpa/inet.h>
#include <hiredis/hiredis_ssl.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <memory>
#include <string>
#endif

namespace euphoria::core::redis {

#ifdef EUPHORIA_REDIS_TLS

namespace {

struct FreeCtx {
    void operator()(SSL_CTX* c) const noexcept { SSL_CTX_free(c); }
};
struct FreeSsl {
    void operator()(SSL* s) const noexcept { SSL_free(s); }
};

std::string openssl_error(const std::string& what) {
    const unsigned long e = ERR_get_error();
    ERR_clear_error();
    if (e == 0) return what;
    char text[256];
    ERR_error_string_n(e, text, sizeof text);
    return what + ": " + text;
}

bool is_ip_literal(const std::string& host) {
    unsigned char buf[sizeof(in6_addr)];
    return ::inet_pton(AF_INET, host.c_str(), buf) == 1 || ::inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

}  // namespace

void start_tls(redisContext& context, const Address& address) {
    ERR_clear_error();
    // A context per connection: they are made at mount and on reconnect only, and it
    // keeps no state shared between threads.
    const std::unique_ptr<SSL_CTX, FreeCtx> ctx(SSL_CTX_new(TLS_client_method()));
    if (!ctx) throw ConnectionError(openssl_error("Redis TLS: no SSL context"));
    SSL_CTX_set_min_proto_version(ctx.get(), TLS1_2_VERSION);
    SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, nullptr);
    if (SSL_CTX_set_default_verify_paths(ctx.get()) != 1) {
        throw ConnectionError(openssl_error("Redis TLS: cannot load the system's CAs"));
    }
    if (!address.ca_file.empty() &&
        SSL_CTX_load_verify_locations(ctx.get(), address.ca_file.c_str(), nullptr) != 1) {
        throw ConnectionError(openssl_error("Redis TLS: cannot load the CA bundle " + address.ca_file));
    }
    std::unique_ptr<SSL, FreeSsl> ssl(SSL_new(ctx.get()));  // holds its own reference to ctx
    if (!ssl) throw ConnectionError(openssl_error("Redis TLS: no SSL object"));
    // hiredis checks the chain only; the name is ours to check, or any certificate a
    // public CA signed for anyone would do.
    if (is_ip_literal(address.host)) {
        if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl.get()), address.host.c_str()) != 1) {
            throw ConnectionError(openssl_error("Redis TLS: bad address " + address.host));
        }
    } else if (SSL_set1_host(ssl.get(), address.host.c_str()) != 1 ||
               // SSL_set_tlsext_host_name(), whose macro casts in C style.
               SSL_ctrl(ssl.get(), SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name,
                        const_cast<char*>(address.host.c_str())) != 1) {
        throw ConnectionError(openssl_error("Redis TLS: bad host name " + address.host));
    }
    if (redisInitiateSSL(&context, ssl.get()) != REDIS_OK) {
        // On failure hiredis leaves the SSL object to us.
        const long verify = SSL_get_verify_result(ssl.get());
        std::string why = context.errstr[0] ? context.errstr : "handshake failed";
        if (verify != X509_V_OK) why += std::string(" (") + X509_verify_cert_error_string(verify) + ")";
        ERR_clear_error();
        throw ConnectionError("Redis TLS with " + address.describe() + ": " + why);
    }
    (void)ssl.release();  // the context owns it now, and frees it with itself
}

#else

void start_tls(redisContext&, const Address& address) {
    // parse_address() refuses rediss:// first; this guards any other way in.
    throw ConnectionError("Redis TLS with " + address.describe() + ": this build has no TLS for Redis");
}

#endif

}  // namespace euphoria::core::redis
