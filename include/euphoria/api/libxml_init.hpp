#pragma once

namespace euphoria::api {

// libxml2 2.9 sets up its encoding tables lazily and without locks: call this once on
// one thread before threads share libxml2. Idempotent and thread-safe.
void init_libxml();

}  // namespace euphoria::api
