// Hugging Face safetensors, read in place from a memory mapping, host only.
//
// A file is: u64 little-endian header length N, N bytes of JSON
//     {"name": {"dtype": "F32", "shape": [r, c], "data_offsets": [begin, end]}, ...,
//      "__metadata__": {"key": "value"}}
// then the data; offsets count from the end of the header. A sharded model is a directory with
// `model.safetensors.index.json` ({"weight_map": {"name": "model-00001-of-00005.safetensors"}})
// next to its shards.
//
// Everything is checked before use: the header length against the file, the JSON (parse errors
// become edgeq::error), each entry's fields, shape products against overflow, the offsets
// against the data section and `end - begin == elements * dtype size`. Any standard dtype is
// accepted in a file; F32, F16 and BF16 convert to float (to_float), others are an error there.
#pragma once
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "../core/error.hpp"
#include "../core/half.hpp"
#include "mmap.hpp"

namespace edgeq {
namespace io {

enum class st_dtype { f32, f16, bf16, other };

struct st_tensor {
    std::string name;
    std::string dtype_name;  // as written: "F32", "F16", "BF16", "I64", ...
    st_dtype dtype = st_dtype::other;
    std::vector<std::uint64_t> shape;
    std::uint64_t elements = 1;
    const std::uint8_t* data = nullptr;  // inside the mapping; not necessarily aligned
    std::size_t bytes = 0;
    std::size_t shard = 0;  // which file of a sharded model
};

namespace detail {
inline std::size_t st_dtype_size(const std::string& d) {
    if (d == "F64" || d == "I64" || d == "U64") return 8;
    if (d == "F32" || d == "I32" || d == "U32") return 4;
    if (d == "F16" || d == "BF16" || d == "I16" || d == "U16") return 2;
    if (d == "I8" || d == "U8" || d == "BOOL" || d == "F8_E4M3" || d == "F8_E5M2") return 1;
    return 0;
}
inline std::uint64_t st_u64(const nlohmann::json& v, const std::string& where) {
    if (!v.is_number_unsigned() && !(v.is_number_integer() && v.get<std::int64_t>() >= 0))
        throw error(where + " is not a non-negative integer");
    return v.get<std::uint64_t>();
}
}  // namespace detail

class safetensors {
   public:
    safetensors() = default;

    // A .safetensors file, a model.safetensors.index.json, or a directory holding either.
    explicit safetensors(const std::string& path) {
        if (is_directory(path)) {
            const std::string index = path + "/model.safetensors.index.json";
            if (file_exists(index)) open_index(index);
            else if (file_exists(path + "/model.safetensors")) open_file(path + "/model.safetensors");
            else throw error("'" + path + "' holds neither model.safetensors nor model.safetensors.index.json");
        } else if (path.size() >= 5 && path.compare(path.size() - 5, 5, ".json") == 0) {
            open_index(path);
        } else {
            open_file(path);
        }
    }

    const std::vector<st_tensor>& tensors() const { return tensors_; }
    const std::map<std::string, std::string>& metadata() const { return metadata_; }
    std::size_t shards() const { return files_.size(); }
    const std::string& shard_path(std::size_t i) const { return files_.at(i)->path(); }

    const st_tensor* find(const std::string& name) const {
        const auto it = index_.find(name);
        return it == index_.end() ? nullptr : &tensors_[it->second];
    }
    const st_tensor& tensor(const std::string& name) const {
        const st_tensor* t = find(name);
        if (!t) throw error("safetensors: no tensor named '" + name + "'");
        return *t;
    }

    // Converts F32, F16 or BF16 to float; out holds t.elements values.
    static void to_float(const st_tensor& t, float* out) {
        const std::uint8_t* p = t.data;
        switch (t.dtype) {
            case st_dtype::f32:
                std::memcpy(out, p, t.elements * 4);
                return;
            case st_dtype::f16:
                for (std::uint64_t i = 0; i < t.elements; ++i) {
                    std::uint16_t h;
                    std::memcpy(&h, p + 2 * i, 2);
                    out[i] = half_to_float(h);
                }
                return;
            case st_dtype::bf16:
                for (std::uint64_t i = 0; i < t.elements; ++i) {
                    std::uint16_t h;
                    std::memcpy(&h, p + 2 * i, 2);
                    out[i] = f32_from_bits(std::uint32_t(h) << 16);
                }
                return;
            default:
                throw error("safetensors: tensor '" + t.name + "' has dtype " + t.dtype_name +
                            "; edgeq converts only F32, F16 and BF16");
        }
    }
    std::vector<float> to_float(const std::string& name) const {
        const st_tensor& t = tensor(name);
        std::vector<float> v(static_cast<std::size_t>(t.elements));
        to_float(t, v.data());
        return v;
    }

   private:
    void open_index(const std::string& index_path) {
        nlohmann::json j;
        try {
            j = nlohmann::json::parse(read_text_file(index_path));
        } catch (const nlohmann::json::exception& e) {
            throw error("'" + index_path + "' is not valid JSON: " + e.what());
        }
        if (!j.is_object() || !j.contains("weight_map") || !j["weight_map"].is_object())
            throw error("'" + index_path + "' has no \"weight_map\" object");
        const std::size_t slash = index_path.rfind('/');
        const std::string dir = slash == std::string::npos ? "" : index_path.substr(0, slash + 1);
        std::map<std::string, std::string> wanted;  // tensor -> shard
        std::vector<std::string> shard_names;
        for (auto it = j["weight_map"].begin(); it != j["weight_map"].end(); ++it) {
            if (!it.value().is_string()) throw error("'" + index_path + "': the shard of '" + it.key() + "' is not a string");
            const std::string s = it.value().get<std::string>();
            if (s.empty() || s.find('/') != std::string::npos || s == "." || s == "..")
                throw error("'" + index_path + "': shard name '" + s + "' is not a file name in the same directory");
            wanted[it.key()] = s;
            bool seen = false;
            for (const std::string& n : shard_names) seen = seen || n == s;
            if (!seen) shard_names.push_back(s);
        }
        if (shard_names.empty()) throw error("'" + index_path + "' lists no tensors");
        std::sort(shard_names.begin(), shard_names.end());  // model-00001-of-... first
        for (const std::string& s : shard_names) open_file(dir + s);
        for (const auto& w : wanted) {
            const st_tensor* t = find(w.first);
            if (!t) throw error("'" + index_path + "' lists tensor '" + w.first + "' in " + w.second + ", which does not hold it");
            if (files_[t->shard]->path() != dir + w.second)
                throw error("'" + index_path + "' lists tensor '" + w.first + "' in " + w.second + ", but it is in " +
                            files_[t->shard]->path());
        }
    }

    void open_file(const std::string& path) {
        std::unique_ptr<mapped_file> f(new mapped_file(path));
        const std::string where = "safetensors file '" + path + "'";
        if (f->size() < 8) throw error(where + " is too short for its header length (" + std::to_string(f->size()) + " bytes)");
        std::uint64_t n = 0;
        for (int i = 7; i >= 0; --i) n = (n << 8) | f->data()[i];
        if (n > f->size() - 8)
            throw error(where + " declares a " + std::to_string(n) + "-byte header but has only " +
                        std::to_string(f->size() - 8) + " bytes after the length");
        const char* h = reinterpret_cast<const char*>(f->data() + 8);
        nlohmann::json j;
        try {
            j = nlohmann::json::parse(h, h + n);
        } catch (const nlohmann::json::exception& e) {
            throw error(where + ": the header is not valid JSON: " + e.what());
        }
        if (!j.is_object()) throw error(where + ": the header is not a JSON object");
        const std::uint8_t* data = f->data() + 8 + n;
        const std::uint64_t data_size = f->size() - 8 - n;
        const std::size_t shard = files_.size();
        for (auto it = j.begin(); it != j.end(); ++it) {
            const std::string& name = it.key();
            const nlohmann::json& e = it.value();
            if (name == "__metadata__") {
                if (!e.is_object()) throw error(where + ": __metadata__ is not an object");
                for (auto m = e.begin(); m != e.end(); ++m)
                    metadata_[m.key()] = m.value().is_string() ? m.value().get<std::string>() : m.value().dump();
                continue;
            }
            const std::string tw = where + ": tensor '" + name + "'";
            if (!e.is_object()) throw error(tw + " is not described by an object");
            if (!e.contains("dtype") || !e["dtype"].is_string()) throw error(tw + " has no \"dtype\" string");
            if (!e.contains("shape") || !e["shape"].is_array()) throw error(tw + " has no \"shape\" array");
            if (!e.contains("data_offsets") || !e["data_offsets"].is_array() || e["data_offsets"].size() != 2)
                throw error(tw + " has no \"data_offsets\" pair");
            st_tensor t;
            t.name = name;
            t.shard = shard;
            t.dtype_name = e["dtype"].get<std::string>();
            const std::size_t esize = detail::st_dtype_size(t.dtype_name);
            if (!esize) throw error(tw + " has unknown dtype '" + t.dtype_name + "'");
            t.dtype = t.dtype_name == "F32" ? st_dtype::f32 : t.dtype_name == "F16" ? st_dtype::f16
                    : t.dtype_name == "BF16" ? st_dtype::bf16 : st_dtype::other;
            if (e["shape"].size() > 8) throw error(tw + " has " + std::to_string(e["shape"].size()) + " dimensions");
            for (const auto& d : e["shape"]) {
                const std::uint64_t v = detail::st_u64(d, tw + ": a shape entry");
                if (v && t.elements > UINT64_MAX / v) throw error(tw + ": the shape's element count overflows");
                t.elements *= v;
                t.shape.push_back(v);
            }
            if (t.elements > UINT64_MAX / esize) throw error(tw + ": the byte size overflows");
            const std::uint64_t b = detail::st_u64(e["data_offsets"][0], tw + ": data_offsets[0]");
            const std::uint64_t en = detail::st_u64(e["data_offsets"][1], tw + ": data_offsets[1]");
            if (b > en || en > data_size)
                throw error(tw + " has data_offsets [" + std::to_string(b) + ", " + std::to_string(en) +
                            "] outside the " + std::to_string(data_size) + "-byte data section");
            if (en - b != t.elements * esize)
                throw error(tw + " holds " + std::to_string(en - b) + " bytes, but " + t.dtype_name + " of this shape needs " +
                            std::to_string(t.elements * esize));
            t.data = data + b;
            t.bytes = std::size_t(en - b);
            if (index_.count(name)) throw error(where + ": tensor '" + name + "' appears twice");
            index_[name] = tensors_.size();
            tensors_.push_back(std::move(t));
        }
        files_.push_back(std::move(f));
    }

    std::vector<std::unique_ptr<mapped_file>> files_;
    std::vector<st_tensor> tensors_;
    std::map<std::string, std::size_t> index_;
    std::map<std::string, std::string> metadata_;
};

}  // namespace io
}  // namespace edgeq
