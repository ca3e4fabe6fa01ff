#pragma once
// TLS for a Redis connection (rediss://), through libhiredis_ssl where the build has
// it (Debian 13's hiredis 1.x). Kept apart so that connection.cpp builds the same on
// Debian 12, whose hiredis has none.

#include <hiredis/hiredis.h>

#include "euphoria/core/redis/address.hpp"

namespace euphoria::core::redis {

// Runs the TLS handshake on a connected context, verifying the server's chain
// against the system's CAs (and address.ca_file) and its name or IP address against
// address.host. Throws ConnectionError; the context then holds no TLS state.
void start_tls(redisContext& context, const Address& address);

}  // namespace euphoria::core::redis
