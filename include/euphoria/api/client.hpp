#pragma once
// The seam between the filesystem core and the network. The core sees only this
// interface, so its tests drive it with a fake.

#include <cstddef>
#include <string>

#include "euphoria/api/cancel.hpp"
#include "euphoria/api/listing.hpp"
#include "euphoria/api/sink.hpp"

namespace euphoria::api {

class Client {
public:
    virtual ~Client() = default;
    // One DownloadCallRecordingByFilename call, one attempt. Streams the decoded
    // recording into `sink` and calls sink.complete() only for a whole, valid reply.
    // Throws ApiError on every failure, including cancellation. Thread-safe.
    virtual void download(const std::string& file_name, Sink& sink, CancelToken& cancel) = 0;

    // One GetCallRecordings call for one page. Hands each record to `on_record` as it
    // arrives; they are provisional until this returns. Returns how many the page
    // held. Throws ApiError as download() does; "Action Name Not Found" is EOPNOTSUPP.
    // By default the client has no listing (EOPNOTSUPP).
    virtual std::size_t list(const ListingQuery& query, const RecordHandler& on_record,
                             CancelToken& cancel);

    // One DownloadCallRecordingByUniqueId call, like download(). Returns the reply's
    // <fileName>, unchecked. By default the client has none (EOPNOTSUPP).
    virtual std::string download_by_id(const std::string& unique_id, Sink& sink,
                                       CancelToken& cancel);
};

}  // namespace euphoria::api
