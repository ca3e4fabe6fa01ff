#include "euphoria/api/request.hpp"

#include <libxml/parser.h>
#include <libxml/tree.h>

#include <cerrno>
#include <initializer_list>
#include <utility>
#include <cstring>
#include <memory>
#include <stdexcept>

#include "euphoria/api/error.hpp"
#include "euphoria/api/libxml_init.hpp"

namespace euphoria::api {

namespace {

struct DocDeleter {
    void operator()(xmlDoc* doc) const noexcept { xmlFreeDoc(doc); }
};
using DocPtr = std::unique_ptr<xmlDoc, DocDeleter>;

struct XmlCharDeleter {
    void operator()(xmlChar* p) const noexcept { xmlFree(p); }
};
using XmlCharPtr = std::unique_ptr<xmlChar, XmlCharDeleter>;

const xmlChar* xml_str(const char* s) { return reinterpret_cast<const xmlChar*>(s); }

// XML 1.0 Char production, decoded from UTF-8; anything else cannot be sent.
bool valid_xml_utf8(std::string_view s) {
    std::size_t i = 0;
    while (i < s.size()) {
        auto c = static_cast<unsigned char>(s[i]);
        char32_t cp;
        std::size_t len;
        if (c < 0x80) {
            cp = c;
            len = 1;
        } else if ((c & 0xE0) == 0xC0) {
            cp = c & 0x1F;
            len = 2;
        } else if ((c & 0xF0) == 0xE0) {
            cp = c & 0x0F;
            len = 3;
        } else if ((c & 0xF8) == 0xF0) {
            cp = c & 0x07;
            len = 4;
        } else {
            return false;
        }
        if (i + len > s.size()) return false;
        for (std::size_t k = 1; k < len; ++k) {
            auto cc = static_cast<unsigned char>(s[i + k]);
            if ((cc & 0xC0) != 0x80) return false;
            cp = (cp << 6) | (cc & 0x3F);
        }
        static constexpr char32_t min_for_len[5] = {0, 0, 0x80, 0x800, 0x10000};
        if (cp < min_for_len[len]) return false;  // overlong encoding
        bool ok = cp == 0x9 || cp == 0xA || cp == 0xD || (cp >= 0x20 && cp <= 0xD7FF) ||
                  (cp >= 0xE000 && cp <= 0xFFFD) || (cp >= 0x10000 && cp <= 0x10FFFF);
        if (!ok) return false;
        i += len;
    }
    return true;
}

// Escapes text the way libxml2 does for element content.
void append_escaped(std::string& out, std::string_view text) {
    for (char c : text) {
        switch (c) {
        case '&': out += "&amp;"; break;
        case '<': out += "&lt;"; break;
        case '>': out += "&gt;"; break;
        case '\r': out += "&#13;"; break;
        default: out.push_back(c);
        }
    }
}

// libxml2 builds and escapes the document, with an empty <Auth>; the key is then
// escaped straight into the one buffer that will hold it, reserved up front, so no
// freed libxml2 or std::string buffer is ever left with a copy.
using Field = std::pair<const char*, std::string_view>;

Secret build(std::string_view tenant, std::string_view key, std::string_view action,
             std::initializer_list<Field> fields) {
    init_libxml();
    DocPtr doc(xmlNewDoc(xml_str("1.0")));
    if (!doc) throw std::bad_alloc();
    xmlNode* root = xmlNewDocNode(doc.get(), nullptr, xml_str("XML"), nullptr);
    if (!root) throw std::bad_alloc();
    xmlDocSetRootElement(doc.get(), root);

    // xmlNewTextChild escapes its content; xmlNewChild would not.
    auto add_text = [](xmlNode* parent, const char* name, std::string_view value) {
        const std::string v(value);
        xmlNode* node = xmlNewTextChild(parent, nullptr, xml_str(name), xml_str(v.c_str()));
        if (!node) throw std::bad_alloc();
        return node;
    };
    xmlNode* tenant_node = xmlNewChild(root, nullptr, xml_str("Tenant"), nullptr);
    if (!tenant_node) throw std::bad_alloc();
    add_text(tenant_node, "Name", tenant);
    add_text(tenant_node, "Auth", "");
    add_text(root, "ActionName", action);
    for (const auto& [name, value] : fields) add_text(root, name, value);

    xmlChar* raw = nullptr;
    int size = 0;
    xmlDocDumpMemoryEnc(doc.get(), &raw, &size, "UTF-8");
    const XmlCharPtr mem(raw);
    if (!mem || size < 0) throw std::bad_alloc();
    const std::string skeleton(reinterpret_cast<const char*>(mem.get()), static_cast<std::size_t>(size));

    // Tenant comes first and escaped text holds no '<', so this is our element.
    constexpr std::string_view empty_auth = "<Auth></Auth>";
    const auto at = skeleton.find(empty_auth);
    if (at == std::string::npos) throw std::logic_error("request skeleton without <Auth>");
    const auto split = at + std::string_view("<Auth>").size();
    std::string body;
    body.reserve(skeleton.size() + 6 * key.size());
    body.append(skeleton, 0, split);
    append_escaped(body, key);
    body.append(skeleton, split);
    return Secret(std::move(body));
}

}  // namespace

void validate_file_name(std::string_view file_name) {
    if (file_name.empty()) {
        throw ApiError(EINVAL, ErrorKind::invalid_name, "empty file name");
    }
    if (!valid_xml_utf8(file_name)) {
        throw ApiError(EINVAL, ErrorKind::invalid_name,
                       "file name is not UTF-8 text that XML can carry");
    }
}

Secret build_download_request(std::string_view tenant, const Secret& key,
                              std::string_view file_name) {
    validate_file_name(file_name);
    if (!valid_xml_utf8(tenant)) {
        throw ApiError(EINVAL, ErrorKind::config, "tenant name is not valid text");
    }
    // The message never shows the key.
    if (!valid_xml_utf8(key.reveal())) {
        throw ApiError(EINVAL, ErrorKind::config, "the auth key holds characters XML cannot carry");
    }
    return build(tenant, key.reveal(), download_action, {{"FileName", file_name}});
}

namespace {

void check_account(std::string_view tenant, const Secret& key) {
    if (!valid_xml_utf8(tenant)) {
        throw ApiError(EINVAL, ErrorKind::config, "tenant name is not valid text");
    }
    if (!valid_xml_utf8(key.reveal())) {
        throw ApiError(EINVAL, ErrorKind::config, "the auth key holds characters XML cannot carry");
    }
}

}  // namespace

Secret build_listing_request(std::string_view tenant, const Secret& key, const ListingQuery& query) {
    check_account(tenant, key);
    if (!valid_xml_utf8(query.start_date) || !valid_xml_utf8(query.end_date)) {
        throw ApiError(EINVAL, ErrorKind::invalid_name, "listing dates are not text");
    }
    const std::string page = std::to_string(query.page_size);
    const std::string start = std::to_string(query.start_at);
    return build(tenant, key.reveal(), listing_action,
                 {{"pageSize", page}, {"startAt", start}, {"StartDate", query.start_date},
                  {"EndDate", query.end_date}});
}

Secret build_by_id_request(std::string_view tenant, const Secret& key, std::string_view unique_id) {
    check_account(tenant, key);
    if (unique_id.empty() || !valid_xml_utf8(unique_id)) {
        throw ApiError(EINVAL, ErrorKind::invalid_name, "unique id is empty or not text");
    }
    return build(tenant, key.reveal(), by_id_action, {{"uniqueId", unique_id}});
}

std::string describe_download_request(std::string_view tenant, std::string_view file_name) {
    Secret shown = build(valid_xml_utf8(tenant) ? tenant : "?", "***", download_action,
                         {{"FileName", valid_xml_utf8(file_name) ? file_name : "?"}});
    return std::string(shown.reveal());
}

}  // namespace euphoria::api
