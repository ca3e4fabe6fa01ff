#include "mock_server.hpp"

#include <curl/curl.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <memory>
#include <regex>
#include <sstream>
#include <stdexcept>
#include <thread>

extern char** environ;

namespace euphoria::test {

namespace {

size_t collect(char* data, size_t, size_t n, void* out) {
    static_cast<std::string*>(out)->append(data, n);
    return n;
}

int json_int(const std::string& json, const std::string& key) {
    std::smatch m;
    if (!std::regex_search(json, m, std::regex("\"" + key + "\"\\s*:\\s*(-?\\d+)"))) {
        throw std::runtime_error("no " + key + " in " + json);
    }
    return std::stoi(m[1]);
}

}  // namespace

std::string base64_encode(const std::string& bytes) {
    static const char* alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string out;
    out.reserve((bytes.size() + 2) / 3 * 4);
    std::size_t i = 0;
    for (; i + 2 < bytes.size(); i += 3) {
        const unsigned v = static_cast<unsigned char>(bytes[i]) << 16 |
                           static_cast<unsigned char>(bytes[i + 1]) << 8 |
                           static_cast<unsigned char>(bytes[i + 2]);
        for (int k = 18; k >= 0; k -= 6) out.push_back(alphabet[(v >> k) & 63]);
    }
    if (i < bytes.size()) {
        unsigned v = static_cast<unsigned char>(bytes[i]) << 16;
        if (i + 1 < bytes.size()) v |= static_cast<unsigned char>(bytes[i + 1]) << 8;
        out.push_back(alphabet[(v >> 18) & 63]);
        out.push_back(alphabet[(v >> 12) & 63]);
        out.push_back(i + 1 < bytes.size() ? alphabet[(v >> 6) & 63] : '=');
        out.push_back('=');
    }
    return out;
}

std::string MockServer::json_string(const std::string& s) {
    std::string out = "\"";
    for (unsigned char c : s) {
        if (c == '"' || c == '\\') {
            out.push_back('\\');
            out.push_back(static_cast<char>(c));
        } else if (c < 0x20) {
            char buf[8];
            static_cast<void>(std::snprintf(buf, sizeof buf, "\\u%04x", c));
            out += buf;
        } else {
            out.push_back(static_cast<char>(c));
        }
    }
    return out + "\"";
}

MockServer::MockServer(std::vector<std::string> extra_args) {
    std::vector<std::string> args{EUPHORIA_PYTHON, EUPHORIA_MOCK_SCRIPT, "--state-dir", state_.path()};
    args.insert(args.end(), extra_args.begin(), extra_args.end());
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    // Keep the test's output readable: the mock's READY line goes nowhere.
    posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
    const int rc = posix_spawn(&pid_, argv[0], &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    if (rc != 0) throw std::runtime_error("cannot start the mock API");

    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    const std::string ports = state_.path() + "/ports.json";
    while (std::chrono::steady_clock::now() < deadline) {
        std::ifstream in(ports);
        if (in) {
            std::stringstream ss;
            ss << in.rdbuf();
            api_port_ = json_int(ss.str(), "api");
            control_port_ = json_int(ss.str(), "control");
            return;
        }
        int status = 0;
        if (waitpid(pid_, &status, WNOHANG) == pid_) {
            pid_ = -1;
            throw std::runtime_error("the mock API exited during start-up");
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    throw std::runtime_error("the mock API did not start in 30 s");
}

MockServer::~MockServer() {
    if (pid_ > 0) {
        kill(pid_, SIGTERM);
        waitpid(pid_, nullptr, 0);
    }
}

std::string MockServer::endpoint() const {
    return "https://127.0.0.1:" + std::to_string(api_port_) + "/Euphoria.Api.aspx";
}

std::string MockServer::control(const std::string& method, const std::string& path,
                                const std::string& json_body) {
    std::unique_ptr<CURL, decltype(&curl_easy_cleanup)> h(curl_easy_init(), curl_easy_cleanup);
    const std::string url = "http://127.0.0.1:" + std::to_string(control_port_) + path;
    std::string body;
    curl_easy_setopt(h.get(), CURLOPT_URL, url.c_str());
    curl_easy_setopt(h.get(), CURLOPT_CUSTOMREQUEST, method.c_str());
    curl_slist* headers = curl_slist_append(nullptr, "Content-Type: application/json");
    std::unique_ptr<curl_slist, decltype(&curl_slist_free_all)> hl(headers, curl_slist_free_all);
    if (method != "GET") {
        curl_easy_setopt(h.get(), CURLOPT_POSTFIELDS, json_body.empty() ? "{}" : json_body.c_str());
        curl_easy_setopt(h.get(), CURLOPT_HTTPHEADER, headers);
    }
    curl_easy_setopt(h.get(), CURLOPT_WRITEFUNCTION, &collect);
    curl_easy_setopt(h.get(), CURLOPT_WRITEDATA, &body);
    curl_easy_setopt(h.get(), CURLOPT_TIMEOUT, 60L);
    if (curl_easy_perform(h.get()) != CURLE_OK) throw std::runtime_error("control call failed: " + path);
    long status = 0;
    curl_easy_getinfo(h.get(), CURLINFO_RESPONSE_CODE, &status);
    if (status != 200) throw std::runtime_error("control " + path + " answered " + std::to_string(status) + ": " + body);
    return body;
}

long MockServer::stat(const std::string& key) { return json_int(control("GET", "/stats"), key); }

void MockServer::fault(const std::string& name, const std::string& kind, int times) {
    control("POST", "/fault",
            "{\"name\":" + json_string(name) + ",\"fault\":" + json_string(kind) +
                ",\"times\":" + std::to_string(times) + "}");
}

void MockServer::add_recording(const std::string& name, const std::string& bytes) {
    control("POST", "/recording",
            "{\"tenant\":\"demo\",\"name\":" + json_string(name) + ",\"data_b64\":\"" +
                base64_encode(bytes) + "\"}");
}

}  // namespace euphoria::test
