// edgeq inspect FILE [--json]: the metadata and tensors of a GGUF file or of a safetensors
// model (one file, a model.safetensors.index.json, or a directory holding either).
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include <edgeq/core/error.hpp>
#include <edgeq/io/gguf.hpp>
#include <edgeq/io/mmap.hpp>
#include <edgeq/io/safetensors.hpp>

#include "cli.hpp"
#include "commands.hpp"

namespace {

const char* const help =
    "usage: edgeq inspect FILE [--json]\n"
    "\n"
    "Prints what a model file holds: its metadata (long arrays abbreviated) and each tensor's\n"
    "name, type, shape, bits per weight and bytes, then the totals. FILE is a GGUF file (versions\n"
    "2 and 3, edgeq's own EDGEQ_GROUPED and EDGEQ_SPQR tensors included, shown with their scheme;\n"
    "a SpQR tensor's bits per weight count its outliers) or safetensors: a .safetensors file, a\n"
    "model.safetensors.index.json, or a model directory holding either.\n"
    "Every length, offset and type in the file is checked first; a damaged file is reported in\n"
    "one line (exit code 1).\n"
    "\n"
    "options:\n"
    "  --json       one JSON object instead of the tables\n"
    "  -h, --help   this text\n";

constexpr std::size_t max_items = 8;        // array elements shown
constexpr std::size_t max_text = 120;       // characters of a metadata value shown in the table

std::string shape_text(const std::vector<std::uint64_t>& s) {
    std::string o = "[";
    for (std::size_t i = 0; i < s.size(); ++i) o += (i ? ", " : "") + std::to_string(s[i]);
    return o + "]";
}
std::string shape_json(const std::vector<std::uint64_t>& s) {
    std::string o = "[";
    for (std::size_t i = 0; i < s.size(); ++i) o += (i ? ", " : "") + std::to_string(s[i]);
    return o + "]";
}

namespace gg = edgeq::io::gguf;

std::string type_text(const gg::value& v) {
    if (v.type() != gg::value_type::array) return gg::value_type_name(v.type());
    return std::string(gg::value_type_name(v.element_type())) + "[" + std::to_string(v.size()) + "]";
}

std::string value_json(const gg::value& v) {
    switch (v.type()) {
        case gg::value_type::string: return cli::json_string(v.as_string());
        case gg::value_type::boolean: return v.as_bool() ? "true" : "false";
        case gg::value_type::f32: case gg::value_type::f64: return cli::json_number(v.as_f64());
        case gg::value_type::array: {
            std::string o = "[";
            for (std::uint64_t i = 0; i < v.size() && i < max_items; ++i) o += (i ? ", " : "") + value_json(v.at(i));
            return o + "]";
        }
        default: return v.to_text();
    }
}

struct totals {
    std::uint64_t tensors = 0, elements = 0, bytes = 0;
    std::string text() const {
        return std::to_string(tensors) + " tensors, " + std::to_string(elements) + " weights, " + cli::bytes(double(bytes)) +
               (elements ? ", " + cli::fmt("%.3f", 8.0 * double(bytes) / double(elements)) + " bits/weight" : "");
    }
    std::string json() const {
        return "{\"tensors\": " + std::to_string(tensors) + ", \"elements\": " + std::to_string(elements) +
               ", \"bytes\": " + std::to_string(bytes) + ", \"bits_per_weight\": " +
               cli::json_number(elements ? 8.0 * double(bytes) / double(elements) : 0.0) + "}";
    }
};

int inspect_gguf(const std::string& path, bool json) {
    const gg::file f(path);
    totals tot;
    for (const gg::tensor_info& t : f.tensors()) {
        ++tot.tensors;
        tot.elements += t.elements;
        tot.bytes += t.bytes;
    }
    if (json) {
        std::printf("{\"path\": %s, \"format\": \"gguf\", \"version\": %u, \"alignment\": %u, \"data_offset\": %llu, "
                    "\"file_bytes\": %zu,\n \"metadata\": {",
                    cli::json_string(path).c_str(), f.version(), f.alignment(), (unsigned long long)f.data_offset(),
                    f.file_size());
        for (std::size_t i = 0; i < f.metadata().size(); ++i) {
            const gg::value& v = f.metadata()[i].second;
            std::printf("%s\n  %s: {\"type\": %s", i ? "," : "", cli::json_string(f.metadata()[i].first).c_str(),
                        cli::json_string(gg::value_type_name(v.type())).c_str());
            if (v.type() == gg::value_type::array)
                std::printf(", \"element_type\": %s, \"count\": %llu", cli::json_string(gg::value_type_name(v.element_type())).c_str(),
                            (unsigned long long)v.size());
            std::printf(", \"value\": %s}", value_json(v).c_str());
        }
        std::printf("},\n \"tensors\": [");
        for (std::size_t i = 0; i < f.tensors().size(); ++i) {
            const gg::tensor_info& t = f.tensors()[i];
            std::printf("%s\n  {\"name\": %s, \"type\": %s, \"type_id\": %u, \"shape\": %s, \"bits_per_weight\": %s, "
                        "\"bytes\": %llu, \"offset\": %llu%s}",
                        i ? "," : "", cli::json_string(t.name).c_str(), cli::json_string(gg::type_name(t.type)).c_str(), t.type,
                        shape_json(t.shape).c_str(), cli::json_number(t.bits_per_weight()).c_str(),
                        (unsigned long long)t.bytes, (unsigned long long)t.offset,
                        t.scheme.empty() ? "" : (", \"scheme\": " + cli::json_string(t.scheme)).c_str());
        }
        std::printf("],\n \"total\": %s}\n", tot.json().c_str());
        return 0;
    }
    std::printf("%s: GGUF version %u, alignment %u, %zu metadata entries, %zu tensors, %s\n\n", path.c_str(), f.version(),
                f.alignment(), f.metadata().size(), f.tensors().size(), cli::bytes(double(f.file_size())).c_str());
    cli::table m({"key", "type", "value"}, {false, false, false});
    for (const auto& kv : f.metadata()) {
        std::string s = kv.second.to_text(max_items);
        if (s.size() > max_text) s = s.substr(0, max_text - 3) + "...";
        m.add({kv.first, type_text(kv.second), s});
    }
    m.print();
    std::printf("\n");
    cli::table t({"tensor", "type", "shape", "bits/weight", "bytes"}, {false, false, false, true, true});
    for (const gg::tensor_info& x : f.tensors())
        t.add({x.name, x.scheme.empty() ? gg::type_name(x.type) : gg::type_name(x.type) + " " + x.scheme,
               shape_text(x.shape), cli::fmt("%.3f", x.bits_per_weight()), std::to_string(x.bytes)});
    t.print();
    std::printf("\ntotal: %s\n", tot.text().c_str());
    return 0;
}

int inspect_safetensors(const std::string& path, bool json) {
    const edgeq::io::safetensors st(path);
    totals tot;
    for (const edgeq::io::st_tensor& t : st.tensors()) {
        ++tot.tensors;
        tot.elements += t.elements;
        tot.bytes += t.bytes;
    }
    if (json) {
        std::printf("{\"path\": %s, \"format\": \"safetensors\", \"shards\": [", cli::json_string(path).c_str());
        for (std::size_t i = 0; i < st.shards(); ++i) std::printf("%s%s", i ? ", " : "", cli::json_string(st.shard_path(i)).c_str());
        std::printf("],\n \"metadata\": {");
        std::size_t i = 0;
        for (const auto& kv : st.metadata())
            std::printf("%s\n  %s: %s", i++ ? "," : "", cli::json_string(kv.first).c_str(), cli::json_string(kv.second).c_str());
        std::printf("},\n \"tensors\": [");
        i = 0;
        for (const edgeq::io::st_tensor& t : st.tensors())
            std::printf("%s\n  {\"name\": %s, \"type\": %s, \"shape\": %s, \"bits_per_weight\": %s, \"bytes\": %zu, \"shard\": %zu}",
                        i++ ? "," : "", cli::json_string(t.name).c_str(), cli::json_string(t.dtype_name).c_str(),
                        shape_json(t.shape).c_str(), cli::json_number(t.elements ? 8.0 * double(t.bytes) / double(t.elements) : 0.0).c_str(),
                        t.bytes, t.shard);
        std::printf("],\n \"total\": %s}\n", tot.json().c_str());
        return 0;
    }
    std::printf("%s: safetensors, %zu file%s, %zu tensors\n", path.c_str(), st.shards(), st.shards() == 1 ? "" : "s",
                st.tensors().size());
    if (!st.metadata().empty()) {
        std::printf("\n");
        cli::table m({"key", "value"}, {false, false});
        for (const auto& kv : st.metadata()) m.add({kv.first, kv.second.size() > max_text ? kv.second.substr(0, max_text - 3) + "..." : kv.second});
        m.print();
    }
    std::printf("\n");
    const bool sharded = st.shards() > 1;
    std::vector<std::string> head = {"tensor", "type", "shape", "bits/weight", "bytes"};
    std::vector<bool> right = {false, false, false, true, true};
    if (sharded) head.push_back("shard"), right.push_back(true);
    cli::table t(head, right);
    for (const edgeq::io::st_tensor& x : st.tensors()) {
        std::vector<std::string> row = {x.name, x.dtype_name, shape_text(x.shape),
                                        cli::fmt("%.3f", x.elements ? 8.0 * double(x.bytes) / double(x.elements) : 0.0),
                                        std::to_string(x.bytes)};
        if (sharded) row.push_back(std::to_string(x.shard + 1));
        t.add(row);
    }
    t.print();
    std::printf("\ntotal: %s\n", tot.text().c_str());
    return 0;
}

bool has_gguf_magic(const std::string& path) {
    std::FILE* f = std::fopen(path.c_str(), "rb");
    if (!f) return false;
    char m[4] = {};
    const bool ok = std::fread(m, 1, 4, f) == 4 && std::memcmp(m, "GGUF", 4) == 0;
    std::fclose(f);
    return ok;
}

bool ends_with(const std::string& s, const char* e) {
    const std::size_t n = std::strlen(e);
    return s.size() >= n && s.compare(s.size() - n, n, e) == 0;
}

}  // namespace

namespace commands {

int inspect(int argc, char** argv) {
    std::vector<char*> options;
    std::vector<std::string> files;
    for (int i = 0; i < argc; ++i) {
        if (argv[i][0] == '-' && argv[i][1] != '\0') options.push_back(argv[i]);
        else files.push_back(argv[i]);
    }
    cli::args a("inspect", int(options.size()), options.data());
    bool json = false;
    while (!a.done()) {
        const std::string o = a.next_option();
        if (o == "-h" || o == "--help") {
            std::fputs(help, stdout);
            return 0;
        } else if (o == "--json") {
            json = true;
        } else {
            a.unknown(o);
        }
    }
    if (files.empty()) a.fail("needs a FILE");
    if (files.size() > 1) a.fail("takes one FILE, not " + std::to_string(files.size()));
    const std::string& path = files[0];
    if (!edgeq::io::file_exists(path)) throw edgeq::error("cannot open '" + path + "': no such file");
    if (edgeq::io::is_directory(path)) return inspect_safetensors(path, json);
    if (has_gguf_magic(path) || ends_with(path, ".gguf")) return inspect_gguf(path, json);
    if (ends_with(path, ".safetensors") || ends_with(path, ".json")) return inspect_safetensors(path, json);
    // Anything else: safetensors has no magic, so try it and say what was expected on failure.
    try {
        return inspect_safetensors(path, json);
    } catch (const edgeq::error& e) {
        throw edgeq::error("'" + path + "' is neither GGUF nor safetensors (" + std::string(e.what()).substr(7) + ")");
    }
}

}  // namespace commands
