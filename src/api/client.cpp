// The optional actions: a client without them says so as the API itself would.

#include "euphoria/api/client.hpp"

#include <cerrno>

#include "euphoria/api/error.hpp"

namespace euphoria::api {

std::size_t Client::list(const ListingQuery&, const RecordHandler&, CancelToken&) {
    throw ApiError(EOPNOTSUPP, ErrorKind::rejected, "this client has no listing");
}

std::string Client::download_by_id(const std::string&, Sink&, CancelToken&) {
    throw ApiError(EOPNOTSUPP, ErrorKind::rejected, "this client has no download by id");
}

}  // namespace euphoria::api
