// Pick a scheme by name at run time: example_02_registry [NAME], e.g. int4-g128 or rtn-clip-nf4-g64-dq.
#include <cstdio>
#include <memory>
#include <vector>

#include <edgeq/registry.hpp>

int main(int argc, char** argv) {
    const char* name = argc > 1 ? argv[1] : "int4-g128";
    try {
        const edgeq::registry::scheme_info s = edgeq::registry::info(name);  // throws if unknown
        std::printf("%s: %d-bit %s codes, %s scales, %.4f bits/weight\n", s.name.c_str(), s.bits, s.codebook.c_str(),
                    s.scale.c_str(), s.bits_per_weight);

        std::vector<float> w(256 * 1024), x(1024, 1.0f), y(256);
        for (std::size_t i = 0; i < w.size(); ++i) w[i] = float(int(i * 2654435761u % 2001) - 1000) * 1e-5f;

        // Type-erased: one virtual call per kernel call.
        const std::unique_ptr<edgeq::linear> l = edgeq::registry::make_linear(name, {w.data(), 256, 1024});
        l->gemv(x.data(), y.data());
        std::printf("%s on %s: %zu bytes, y[0] = %.5f\n", l->scheme_name().c_str(), l->backend_name(), l->storage_bytes(), y[0]);

        // Or the static type, to call anything the static API offers.
        edgeq::registry::visit(name, [&](auto t) {
            using S = typename decltype(t)::type;
            const auto q = edgeq::quantize<S>({w.data(), 256, 1024});
            std::printf("static %s: %zu bytes\n", edgeq::name_of<S>().c_str(), q.storage_bytes());
        });
    } catch (const edgeq::error& e) {
        std::fprintf(stderr, "%s\n", e.what());
        return 2;
    }
}
