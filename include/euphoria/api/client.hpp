#pragma once
// The seam between the filesystem core and the network. The core sees only this
// interface, so its tests drive it with a fake.

#include <string>

#include "euphoria/api/cancel.hpp"
#include "euphoria/api/sink.hpp"

namespace euphoria::api {

class Client {
public:
    virtual ~Client() = default;
    // One DownloadCallRecordingByFilename call, one attempt. Streams the decoded
    // recording into `sink` and calls sink.complete() only for a whole, valid reply.
    // Throws ApiError on every failure, including cancellation. Thread-safe.
    virtual void download(const std::string& file_name, Sink& sink, CancelToken& cancel) = 0;
};

}  // namespace euphoria::api
