#pragma once
// The real Client: libcurl over HTTPS, streaming the reply through ReplyParser. Past
// 512 KiB of body, a stage thread (ByteStage) parses and decodes while libcurl receives.

#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "euphoria/api/client.hpp"
#include "euphoria/api/secret.hpp"
#include "euphoria/api/trust_store.hpp"

namespace euphoria::api {

inline constexpr std::string_view default_endpoint = "https://api.euphoria.co.za/Euphoria.Api.aspx";

struct ClientConfig {
    std::string endpoint{default_endpoint};
    std::string tenant;
    Secret key;
    std::string ca_file;  // trusted in addition to the system's CAs; empty for none
    std::chrono::seconds connect_timeout{10};
    // No byte for this long ends the transfer. There is deliberately no total-time
    // limit: it would kill a large, slow but healthy download.
    std::chrono::seconds stall_timeout{30};
    std::size_t buffer_size = std::size_t{512} << 10;
    // Warm connections kept between calls: one per upstream slot is enough.
    std::size_t max_connections = 3;
};

// Refuses anything but an https:// URL, before a key could be sent anywhere.
void check_endpoint(std::string_view endpoint);

class CurlClient final : public Client {
public:
    // Throws ApiError (config) for a bad endpoint or CA file.
    explicit CurlClient(ClientConfig config);
    ~CurlClient() override;
    CurlClient(const CurlClient&) = delete;
    CurlClient& operator=(const CurlClient&) = delete;

    void download(const std::string& file_name, Sink& sink, CancelToken& cancel) override;
    std::size_t list(const ListingQuery& query, const RecordHandler& on_record,
                     CancelToken& cancel) override;
    std::string download_by_id(const std::string& unique_id, Sink& sink,
                               CancelToken& cancel) override;

    struct Handle;  // one easy + multi pair, with its warm connection
    struct Call;    // a call's state, as its write callback keeps it

private:
    // One call whose reply is a recording; returns its <fileName>.
    std::string fetch_recording(Secret body, Sink& sink, CancelToken& cancel);
    // Sends `body` on `handle` and runs the transfer to its end, wiping `body` after;
    // throws for anything but a whole 200 reply that `call` took without an error.
    // The handle goes back to the pool unless the connection was left half-read.
    void perform(std::unique_ptr<Handle> handle, Secret& body, Call& call);
    std::unique_ptr<Handle> checkout();
    void checkin(std::unique_ptr<Handle> handle);

    ClientConfig config_;
    std::unique_ptr<TrustStore> trust_;  // the system's CAs plus ca_file, parsed once
    struct Share;
    std::unique_ptr<Share> share_;  // TLS sessions and DNS shared across handles
    // Guards idle_. Leaf lock.
    std::mutex idle_mutex_;
    // Idle handles keep their connections warm, so sequential calls reuse one TLS
    // session; the throttle bounds how many exist at once.
    std::vector<std::unique_ptr<Handle>> idle_;
};

}  // namespace euphoria::api
