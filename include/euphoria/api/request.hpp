#pragma once
// Builds the XML request body. libxml2 does the escaping, so a file name is sent
// exactly as given, whatever characters it holds.

#include <string>
#include <string_view>

#include "euphoria/api/listing.hpp"
#include "euphoria/api/secret.hpp"

namespace euphoria::api {

inline constexpr std::string_view download_action = "DownloadCallRecordingByFilename";

// Throws ApiError (EINVAL, invalid_name) when the name is empty, is not UTF-8, or holds
// a character XML 1.0 cannot carry (most control characters).
void validate_file_name(std::string_view file_name);

// The body holds the key: the caller wipes it after use (it is a Secret).
Secret build_download_request(std::string_view tenant, const Secret& key,
                              std::string_view file_name);

// GetCallRecordings for one page of a date range.
Secret build_listing_request(std::string_view tenant, const Secret& key, const ListingQuery& query);
// DownloadCallRecordingByUniqueId. Throws ApiError (EINVAL) for an empty id or one
// XML cannot carry.
Secret build_by_id_request(std::string_view tenant, const Secret& key, std::string_view unique_id);

// The same request with the key replaced, fit for a debug log.
std::string describe_download_request(std::string_view tenant, std::string_view file_name);

}  // namespace euphoria::api
