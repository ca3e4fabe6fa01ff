#pragma once
// Runs tests/mock/euphoria_mock.py for a test: real HTTPS on 127.0.0.1 with a
// throwaway CA, and a plain-HTTP control port for faults and counters.

#include <sys/types.h>

#include <string>
#include <vector>

#include "temp_dir.hpp"

namespace euphoria::test {

inline constexpr const char* mock_tenant = "demo";
inline constexpr const char* mock_key = "demo-key-123";

class MockServer {
public:
    explicit MockServer(std::vector<std::string> extra_args = {});
    ~MockServer();
    MockServer(const MockServer&) = delete;
    MockServer& operator=(const MockServer&) = delete;

    std::string endpoint() const;
    std::string ca_file() const { return state_.path() + "/ca.pem"; }
    int api_port() const { return api_port_; }

    // Control API; throws std::runtime_error on a non-200 answer.
    std::string control(const std::string& method, const std::string& path,
                        const std::string& json_body = {});
    long stat(const std::string& key);  // a top-level numeric counter of GET /stats
    void reset_counters() { control("POST", "/reset"); }
    void fault(const std::string& name, const std::string& kind, int times = -1);
    void clear_faults() { control("POST", "/fault/clear"); }
    void add_recording(const std::string& name, const std::string& bytes);
    void configure(const std::string& json) { control("POST", "/config", json); }

    static std::string json_string(const std::string& s);

private:
    TempDir state_;
    pid_t pid_ = -1;
    int api_port_ = 0;
    int control_port_ = 0;
};

std::string base64_encode(const std::string& bytes);

}  // namespace euphoria::test
