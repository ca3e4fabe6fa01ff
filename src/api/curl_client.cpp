#include "euphoria/api/curl_client.hpp"

#include <curl/curl.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdint>
#include <exception>
#include <new>
#include <optional>
#include <system_error>

#include "euphoria/api/error.hpp"
#include "euphoria/api/libxml_init.hpp"
#include "euphoria/api/listing.hpp"
#include "euphoria/api/pipeline.hpp"
#include "euphoria/api/reply_parser.hpp"
#include "euphoria/api/request.hpp"
#include "euphoria/api/trust_store.hpp"

namespace euphoria::api {

namespace {

struct EasyDeleter {
    void operator()(CURL* h) const noexcept { curl_easy_cleanup(h); }
};
struct MultiDeleter {
    void operator()(CURLM* h) const noexcept { curl_multi_cleanup(h); }
};
struct SlistDeleter {
    void operator()(curl_slist* l) const noexcept { curl_slist_free_all(l); }
};
struct ShareDeleter {
    void operator()(CURLSH* h) const noexcept { curl_share_cleanup(h); }
};
using EasyPtr = std::unique_ptr<CURL, EasyDeleter>;
using MultiPtr = std::unique_ptr<CURLM, MultiDeleter>;
using SlistPtr = std::unique_ptr<curl_slist, SlistDeleter>;
using SharePtr = std::unique_ptr<CURLSH, ShareDeleter>;

// curl_global_init is not thread-safe on older libcurls; do it once, first.
void global_init_once() {
    static const bool done = [] { return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK; }();
    if (!done) throw ApiError(EIO, ErrorKind::local, "libcurl failed to initialise");
}

// `os_errno` tells a reset during the handshake (a transient network failure) from
// a handshake the peer refused.
ApiError error_from_curl(CURLcode code, const char* detail, long os_errno = 0) {
    std::string text = detail && *detail ? detail : curl_easy_strerror(code);
    switch (code) {
    case CURLE_OPERATION_TIMEDOUT:
        return ApiError(ETIMEDOUT, ErrorKind::timeout, "timed out: " + text);
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_CONNECT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
        return ApiError(EIO, ErrorKind::network, "network error: " + text);
    case CURLE_SSL_CONNECT_ERROR:
        if (os_errno != 0) return ApiError(EIO, ErrorKind::network, "network error: " + text);
        return ApiError(EIO, ErrorKind::tls, "TLS failure: " + text);
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_ENGINE_INITFAILED:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_SHUTDOWN_FAILED:
        return ApiError(EIO, ErrorKind::tls, "TLS failure: " + text);
    case CURLE_ABORTED_BY_CALLBACK:
        return ApiError(EINTR, ErrorKind::cancelled, "cancelled");
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_URL_MALFORMAT:
        return ApiError(EINVAL, ErrorKind::config, "bad endpoint: " + text);
    default:
        return ApiError(EIO, ErrorKind::network, "transfer failed: " + text);
    }
}

// libcurl calls this for each new connection, after its own (here empty) CA setup.
CURLcode install_trust(CURL*, void* ssl_ctx, void* store) {
    try {
        static_cast<TrustStore*>(store)->install(ssl_ctx);
        return CURLE_OK;
    } catch (...) {
        return CURLE_OUT_OF_MEMORY;
    }
}

}  // namespace

void check_endpoint(std::string_view endpoint) {
    constexpr std::string_view scheme = "https://";
    if (endpoint.size() <= scheme.size() || endpoint.substr(0, scheme.size()) != scheme) {
        throw ApiError(EINVAL, ErrorKind::config,
                       "endpoint must be an https:// URL (the key is never sent in clear): " +
                           std::string(endpoint));
    }
}

// The share lets a new connection resume an earlier TLS session instead of paying a
// full handshake. libcurl needs the locking done for it when handles span threads.
struct CurlClient::Share {
    SharePtr handle{curl_share_init()};
    std::array<std::mutex, CURL_LOCK_DATA_LAST> locks;

    Share() {
        if (!handle) throw std::bad_alloc();
        curl_share_setopt(handle.get(), CURLSHOPT_LOCKFUNC, &Share::lock);
        curl_share_setopt(handle.get(), CURLSHOPT_UNLOCKFUNC, &Share::unlock);
        curl_share_setopt(handle.get(), CURLSHOPT_USERDATA, this);
        curl_share_setopt(handle.get(), CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
        curl_share_setopt(handle.get(), CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
    }
    static void lock(CURL*, curl_lock_data data, curl_lock_access, void* self) {
        static_cast<Share*>(self)->locks[data].lock();
    }
    static void unlock(CURL*, curl_lock_data data, void* self) {
        static_cast<Share*>(self)->locks[data].unlock();
    }
};

struct CurlClient::Handle {
    MultiPtr multi{curl_multi_init()};
    EasyPtr easy{curl_easy_init()};
    SlistPtr headers;
    std::array<char, CURL_ERROR_SIZE> error{};
};

namespace {

// A body up to this size is parsed on the receiving thread as it arrives: an error
// reply or a small recording is done before a stage thread would have paid off.
// Past it, the rest goes through a ByteStage, so receive and decode overlap.
constexpr std::uint64_t inline_body_limit = std::uint64_t{512} << 10;

}  // namespace

// What every call's write callback keeps, and CurlClient::perform() reads.
struct CurlClient::Call {
    Call(CURL* e, CancelToken& c, curl_write_callback w) : easy(e), cancel(c), write(w) {}
    Call(const Call&) = delete;
    Call& operator=(const Call&) = delete;
    virtual ~Call() = default;

    CURL* easy;
    CancelToken& cancel;
    const curl_write_callback write;  // called with this Call as its CURLOPT_WRITEDATA
    long status = 0;
    std::exception_ptr failure;  // thrown by the parser or sink; rethrown outside curl
    // When the last byte arrived. curl's own low-speed check averages over a window
    // of seconds, so a burst followed by silence would go unnoticed for too long.
    std::chrono::steady_clock::time_point last_byte = std::chrono::steady_clock::now();
    std::uint64_t body_bytes = 0;

    // A parse running on another thread failed, while curl waits on the socket.
    virtual bool stage_failed() const noexcept { return false; }
    // Ends such a parse: drains what was received unless `drop`, and keeps its error.
    virtual void stop_stage(bool /*drop*/) noexcept {}
};

namespace {

// A recording's reply: parsed inline at first, then on a stage thread.
struct Transfer final : CurlClient::Call {
    Transfer(CURL* e, CURLM* m, Sink& s, CancelToken& c) : Call(e, c, &on_data), multi(m), sink(s) {}

    CURLM* multi;
    Sink& sink;
    std::optional<ReplyParser> parser;
    bool inline_only = false;  // no stage thread could be started: parse here
    // Declared after the parser it feeds, so it is joined before the parser goes;
    // the subscription, last, goes first, so no cancel() reaches a dead stage.
    std::optional<ByteStage> stage;
    std::optional<CancelSubscription> stage_cancel;

    // Hands the parser to a stage thread for the rest of the body. From here on only
    // that thread touches the parser and the sink, until stop_stage() has joined it.
    void start_stage() {
        try {
            stage.emplace([this](const char* data, std::size_t size) { parser->feed(data, size); },
                          [m = multi] { curl_multi_wakeup(m); });
        } catch (const std::system_error&) {
            inline_only = true;  // no thread to be had: slower, but the same result
            return;
        } catch (const std::bad_alloc&) {
            inline_only = true;  // nor the ring's memory: the inline parse needs none
            return;
        }
        // A producer blocked on a full ring, or waiting for the drain, must see cancel.
        stage_cancel.emplace(&cancel, [this] { stage->abandon(); });
    }

    // Ends the stage: drains what was pushed unless `drop`, joins it, and keeps the
    // consumer's error as this transfer's, as if the parse had run inline.
    void stop_stage(bool drop) noexcept override {
        if (!stage) return;
        if (drop) stage->abandon();
        std::exception_ptr error = stage->finish();
        if (error && !failure) failure = std::move(error);
    }

    bool stage_failed() const noexcept override { return stage && stage->failed(); }

    static size_t on_data(char* data, size_t, size_t size, void* self_ptr) {
        auto* self = static_cast<Transfer*>(static_cast<Call*>(self_ptr));
        try {
            if (self->cancel.cancelled()) return 0;
            self->last_byte = std::chrono::steady_clock::now();
            if (self->status == 0) {
                curl_easy_getinfo(self->easy, CURLINFO_RESPONSE_CODE, &self->status);
                if (self->status == 200) self->parser.emplace(self->sink);
            }
            // A non-200 body is an HTML error page of the proxy or server: drop it.
            if (self->parser) {
                self->body_bytes += size;
                if (!self->stage && !self->inline_only && self->body_bytes > inline_body_limit) {
                    self->start_stage();
                }
                if (self->stage) {
                    // False: the stage failed (its error is kept) or was cancelled.
                    if (!self->stage->push(data, size)) return 0;
                } else {
                    self->parser->feed(data, size);
                }
            }
            // A slow sink is not a stalled server.
            self->last_byte = std::chrono::steady_clock::now();
            return size;
        } catch (...) {
            self->failure = std::current_exception();
            return 0;  // makes curl stop with CURLE_WRITE_ERROR
        }
    }
};

}  // namespace

CurlClient::CurlClient(ClientConfig config) : config_(std::move(config)) {
    check_endpoint(config_.endpoint);
    // Here, on the thread that builds the client, before any worker shares libxml2.
    init_libxml();
    global_init_once();
    trust_ = std::make_unique<TrustStore>(TrustStore::defaults(config_.ca_file));
    share_ = std::make_unique<Share>();
}

CurlClient::~CurlClient() = default;

std::unique_ptr<CurlClient::Handle> CurlClient::checkout() {
    {
        std::lock_guard lock(idle_mutex_);
        if (!idle_.empty()) {
            auto h = std::move(idle_.back());
            idle_.pop_back();
            return h;
        }
    }
    auto h = std::make_unique<Handle>();
    if (!h->multi || !h->easy) throw std::bad_alloc();
    CURL* e = h->easy.get();
    auto set = [&](CURLoption opt, auto value) {
        if (curl_easy_setopt(e, opt, value) != CURLE_OK) {
            throw ApiError(EINVAL, ErrorKind::config, "libcurl refused an option");
        }
    };
    set(CURLOPT_URL, config_.endpoint.c_str());
    set(CURLOPT_PROTOCOLS_STR, "https");
    set(CURLOPT_FOLLOWLOCATION, 0L);
    set(CURLOPT_SSL_VERIFYPEER, 1L);
    set(CURLOPT_SSL_VERIFYHOST, 2L);
    // The CAs come from trust_, parsed once: libcurl is given none to parse itself.
    set(CURLOPT_CAINFO, static_cast<char*>(nullptr));
    set(CURLOPT_CAPATH, static_cast<char*>(nullptr));
    if (curl_easy_setopt(e, CURLOPT_SSL_CTX_FUNCTION, &install_trust) != CURLE_OK) {
        throw ApiError(EINVAL, ErrorKind::config, "libcurl is not built with OpenSSL");
    }
    set(CURLOPT_SSL_CTX_DATA, static_cast<void*>(trust_.get()));
    set(CURLOPT_CONNECTTIMEOUT, static_cast<long>(config_.connect_timeout.count()));
    set(CURLOPT_BUFFERSIZE, static_cast<long>(config_.buffer_size));
    set(CURLOPT_NOSIGNAL, 1L);
    set(CURLOPT_TCP_KEEPALIVE, 1L);
    set(CURLOPT_ERRORBUFFER, h->error.data());
    set(CURLOPT_SHARE, share_->handle.get());
    set(CURLOPT_USERAGENT, "euphoriafs/" EUPHORIA_API_VERSION);
    set(CURLOPT_WRITEFUNCTION, &Transfer::on_data);
    curl_slist* list = curl_slist_append(nullptr, "Content-Type: text/xml; charset=utf-8");
    // Expect: 100-continue would cost a round trip on every call for a tiny body.
    if (list) list = curl_slist_append(list, "Expect:");
    if (!list) throw std::bad_alloc();
    h->headers.reset(list);
    set(CURLOPT_HTTPHEADER, h->headers.get());
    return h;
}

void CurlClient::checkin(std::unique_ptr<Handle> handle) {
    std::lock_guard lock(idle_mutex_);
    if (idle_.size() < config_.max_connections) idle_.push_back(std::move(handle));
}

void CurlClient::download(const std::string& file_name, Sink& sink, CancelToken& cancel) {
    fetch_recording(build_download_request(config_.tenant, config_.key, file_name), sink, cancel);
}

std::string CurlClient::download_by_id(const std::string& unique_id, Sink& sink, CancelToken& cancel) {
    try {
        return fetch_recording(build_by_id_request(config_.tenant, config_.key, unique_id), sink,
                               cancel);
    } catch (const ApiError& e) {
        throw for_optional_action(e);
    }
}

void CurlClient::perform(std::unique_ptr<Handle> handle, Secret& body, Call& call) {
    CURL* easy = handle->easy.get();
    CURLM* multi = handle->multi.get();
    CancelToken& cancel = call.cancel;
    handle->error[0] = '\0';
    curl_easy_setopt(easy, CURLOPT_POSTFIELDS, body.reveal().data());
    curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE, static_cast<long>(body.reveal().size()));
    curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, call.write);
    curl_easy_setopt(easy, CURLOPT_WRITEDATA, &call);

    curl_multi_add_handle(multi, easy);
    CURLcode result = CURLE_OK;
    bool stalled = false;
    {
        // Wakes the poll below at once, so cancellation does not wait for a timeout.
        CancelSubscription wake(&cancel, [multi] { curl_multi_wakeup(multi); });
        int running = 1;
        while (running) {
            if (curl_multi_perform(multi, &running) != CURLM_OK) {
                result = CURLE_FAILED_INIT;
                break;
            }
            if (cancel.cancelled()) {
                result = CURLE_ABORTED_BY_CALLBACK;
                break;
            }
            // The stage's sink or parser failed while curl waits on the socket: its
            // error must not wait for the next byte, or for the stall timer.
            if (call.stage_failed()) {
                result = CURLE_WRITE_ERROR;
                break;
            }
            if (!running) break;
            const auto silent = std::chrono::steady_clock::now() - call.last_byte;
            if (silent >= config_.stall_timeout) {
                result = CURLE_OPERATION_TIMEDOUT;
                stalled = true;
                break;
            }
            const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                config_.stall_timeout - silent);
            curl_multi_poll(multi, nullptr, 0, static_cast<int>(std::clamp<long long>(left.count() + 1, 1, 1000)), nullptr);
        }
        int left = 0;
        while (CURLMsg* msg = curl_multi_info_read(multi, &left)) {
            if (msg->msg == CURLMSG_DONE && result == CURLE_OK) result = msg->data.result;
        }
        // Inside the wake-up's scope: the stage may still wake this multi. A broken-off
        // transfer drops the stage's bytes; any other drains them first, so an error in
        // bytes already received wins over a later network error, as it does inline.
        call.stop_stage(stalled || result == CURLE_ABORTED_BY_CALLBACK || cancel.cancelled());
    }
    curl_multi_remove_handle(multi, easy);
    // The handle keeps a pointer to the body; scrub the key before anything else.
    curl_easy_setopt(easy, CURLOPT_POSTFIELDS, nullptr);
    body.wipe();
    const std::string detail =
        stalled ? "no data for " + std::to_string(config_.stall_timeout.count()) + " s"
                : std::string(handle->error.data());
    // A transfer we broke off leaves a half-read connection: it goes with the handle.
    if (stalled) throw error_from_curl(CURLE_OPERATION_TIMEDOUT, detail.c_str());
    if (result == CURLE_ABORTED_BY_CALLBACK) throw ApiError(EINTR, ErrorKind::cancelled, "cancelled");
    if (call.status == 0) curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &call.status);
    long os_errno = 0;
    if (result == CURLE_SSL_CONNECT_ERROR) curl_easy_getinfo(easy, CURLINFO_OS_ERRNO, &os_errno);
    checkin(std::move(handle));

    if (call.failure) std::rethrow_exception(call.failure);
    if (cancel.cancelled()) throw ApiError(EINTR, ErrorKind::cancelled, "cancelled");
    if (result != CURLE_OK) throw error_from_curl(result, detail.c_str(), os_errno);
    if (call.status != 200) {
        const bool transient = call.status == 429 || call.status >= 500;
        throw ApiError(EIO, transient ? ErrorKind::http_status : ErrorKind::other_error,
                       "HTTP status " + std::to_string(call.status) + " from the API");
    }
}

std::string CurlClient::fetch_recording(Secret body, Sink& sink, CancelToken& cancel) {
    if (cancel.cancelled()) throw ApiError(EINTR, ErrorKind::cancelled, "cancelled");

    auto handle = checkout();
    Transfer transfer(handle->easy.get(), handle->multi.get(), sink, cancel);
    sink.reset();
    perform(std::move(handle), body, transfer);
    if (!transfer.parser) {
        throw ApiError(EIO, ErrorKind::malformed, "malformed reply: empty body");
    }
    transfer.parser->finish();
    return transfer.parser->file_name();
}

namespace {

// One listing page: small enough to parse on the receiving thread as it arrives.
struct PageTransfer final : CurlClient::Call {
    PageTransfer(CURL* e, const RecordHandler& on_record, CancelToken& c)
        : Call(e, c, &on_data), parser(on_record) {}
    ListingParser parser;

    static size_t on_data(char* data, size_t, size_t size, void* self_ptr) {
        auto* self = static_cast<PageTransfer*>(static_cast<Call*>(self_ptr));
        try {
            if (self->cancel.cancelled()) return 0;
            self->last_byte = std::chrono::steady_clock::now();
            if (self->status == 0) curl_easy_getinfo(self->easy, CURLINFO_RESPONSE_CODE, &self->status);
            if (self->status == 200) {
                self->body_bytes += size;
                self->parser.feed(data, size);
            }
            self->last_byte = std::chrono::steady_clock::now();
            return size;
        } catch (...) {
            self->failure = std::current_exception();
            return 0;
        }
    }
};

}  // namespace

std::size_t CurlClient::list(const ListingQuery& query, const RecordHandler& on_record,
                             CancelToken& cancel) {
    Secret body = build_listing_request(config_.tenant, config_.key, query);
    if (cancel.cancelled()) throw ApiError(EINTR, ErrorKind::cancelled, "cancelled");
    auto handle = checkout();
    PageTransfer transfer(handle->easy.get(), on_record, cancel);
    perform(std::move(handle), body, transfer);
    if (transfer.body_bytes == 0) throw ApiError(EIO, ErrorKind::malformed, "malformed listing: empty body");
    return transfer.parser.finish();
}

}  // namespace euphoria::api
