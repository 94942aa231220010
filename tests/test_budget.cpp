// The budget solver (engine/budget.hpp): one candidate per tensor, least total error within the
// budget. Checked on hand-made cases with a known optimum and against brute force.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include <edgeq/engine/budget.hpp>

namespace engine = edgeq::engine;

namespace {

engine::budget_item item(const std::string& name, std::vector<engine::budget_candidate> c) {
    return engine::budget_item{name, std::move(c)};
}

// The least total error within the budget, over every combination (infinity: none fits).
double brute_force(const std::vector<engine::budget_item>& items, std::uint64_t budget) {
    double best = std::numeric_limits<double>::infinity();
    std::vector<std::size_t> pick(items.size(), 0);
    for (;;) {
        std::uint64_t cost = 0;
        double err = 0;
        for (std::size_t i = 0; i < items.size(); ++i) cost += items[i].candidates[pick[i]].cost, err += items[i].candidates[pick[i]].error;
        if (cost <= budget && err < best) best = err;
        std::size_t i = 0;
        while (i < items.size() && ++pick[i] == items[i].candidates.size()) pick[i++] = 0;
        if (i == items.size()) return best;
    }
}

std::vector<engine::budget_item> random_items(std::mt19937& gen, std::size_t n, std::size_t k, std::uint64_t scale) {
    std::uniform_int_distribution<std::uint64_t> cost(1, 20);
    std::uniform_real_distribution<double> err(0.0, 10.0);
    std::vector<engine::budget_item> items;
    for (std::size_t i = 0; i < n; ++i) {
        engine::budget_item it{"t" + std::to_string(i), {}};
        for (std::size_t c = 0; c < k; ++c) it.candidates.push_back({"c" + std::to_string(c), cost(gen) * scale, err(gen)});
        items.push_back(it);
    }
    return items;
}

double chosen_error(const std::vector<engine::budget_item>& items, const engine::budget_solution& s) {
    double e = 0;
    for (std::size_t i = 0; i < items.size(); ++i) e += items[i].candidates[s.choice[i]].error;
    return e;
}

}  // namespace

TEST_CASE("budget: hand-made cases with a known optimum") {
    const std::vector<engine::budget_item> items = {item("a", {{"a2", 2, 10.0}, {"a4", 4, 1.0}}),
                                                    item("b", {{"b2", 2, 8.0}, {"b4", 4, 5.0}})};
    CHECK(engine::budget_minimum(items) == 4);
    CHECK(engine::budget_maximum(items) == 8);
    // 4: both cheapest; 6: the upgrade that saves most (a); 7: still one upgrade; 8: both.
    const std::uint64_t budgets[] = {4, 5, 6, 7, 8, 100};
    const std::size_t a[] = {0, 0, 1, 1, 1, 1}, b[] = {0, 0, 0, 0, 1, 1};
    const double errors[] = {18, 18, 9, 9, 6, 6};
    for (int k = 0; k < 6; ++k) {
        const engine::budget_solution s = engine::solve_budget(items, budgets[k]);
        INFO("budget " << budgets[k]);
        CHECK(s.choice[0] == a[k]);
        CHECK(s.choice[1] == b[k]);
        CHECK(s.error == Approx(errors[k]));
        CHECK(s.cost <= budgets[k]);
    }
}

TEST_CASE("budget: exact where the greedy upgrade by error saved per unit is not") {
    // x's upgrade saves the most per unit (11/6), but taking it leaves 4, too little for y or z;
    // y and z together save 12 with 10.
    const std::vector<engine::budget_item> items = {item("x", {{"x0", 0, 11.0}, {"x1", 6, 0.0}}),
                                                    item("y", {{"y0", 0, 6.0}, {"y1", 5, 0.0}}),
                                                    item("z", {{"z0", 0, 6.0}, {"z1", 5, 0.0}})};
    const engine::budget_solution s = engine::solve_budget(items, 10);
    CHECK(s.choice == std::vector<std::size_t>({0, 1, 1}));
    CHECK(s.error == Approx(11.0));
    CHECK(s.cost == 10);
}

TEST_CASE("budget: ties go to the cheaper candidate, and the answer is deterministic") {
    const std::vector<engine::budget_item> items = {item("a", {{"dear", 8, 1.0}, {"cheap", 4, 1.0}, {"worse", 2, 3.0}})};
    const engine::budget_solution s = engine::solve_budget(items, 100);
    CHECK(s.choice[0] == 1);
    CHECK(s.cost == 4);
    std::mt19937 gen(7);
    const std::vector<engine::budget_item> r = random_items(gen, 12, 5, 1000);
    const std::uint64_t mid = (engine::budget_minimum(r) + engine::budget_maximum(r)) / 2;
    CHECK(engine::solve_budget(r, mid).choice == engine::solve_budget(r, mid).choice);
}

TEST_CASE("budget: equals brute force on small random instances, within the budget") {
    std::mt19937 gen(2024);
    for (int trial = 0; trial < 300; ++trial) {
        std::uniform_int_distribution<std::size_t> nn(1, 6), kk(1, 4);
        const std::size_t n = nn(gen), k = kk(gen);
        const std::uint64_t scale = trial % 3 == 0 ? 1 : trial % 3 == 1 ? 16 : 4096;  // a large common unit
        const std::vector<engine::budget_item> items = random_items(gen, n, k, scale);
        const std::uint64_t lo = engine::budget_minimum(items), hi = engine::budget_maximum(items);
        std::uniform_int_distribution<std::uint64_t> pick(lo, hi + scale);
        const std::uint64_t budget = pick(gen);
        const engine::budget_solution s = engine::solve_budget(items, budget);
        INFO("trial " << trial << ", " << n << " tensors, " << k << " candidates, budget " << budget);
        REQUIRE(s.choice.size() == n);
        CHECK(s.cost <= budget);
        CHECK(s.error == Approx(chosen_error(items, s)));
        CHECK(s.error == Approx(brute_force(items, budget)).margin(1e-9));
    }
}

TEST_CASE("budget: a coarse grid stays within the budget and near the optimum") {
    std::mt19937 gen(99);
    for (int trial = 0; trial < 100; ++trial) {
        const std::vector<engine::budget_item> items = random_items(gen, 6, 4, 1);
        const std::uint64_t lo = engine::budget_minimum(items), hi = engine::budget_maximum(items);
        std::uniform_int_distribution<std::uint64_t> pick(lo, hi);
        const std::uint64_t budget = pick(gen);
        const engine::budget_solution s = engine::solve_budget(items, budget, 8);  // 8 cells: costs rounded up
        INFO("trial " << trial << ", budget " << budget);
        CHECK(s.cost <= budget);
        CHECK(s.error >= brute_force(items, budget) - 1e-9);
        // Never worse than the best choice that fits a budget smaller by a cell per tensor.
        const std::uint64_t unit = (hi - lo + 7) / 8;
        if (budget >= lo + 6 * unit) CHECK(s.error <= brute_force(items, budget - 6 * unit) + 1e-9);
    }
}

TEST_CASE("budget: a larger budget never gives a larger error") {
    std::mt19937 gen(5);
    for (std::size_t cells : {std::size_t(1) << 18, std::size_t(16)}) {
        const std::vector<engine::budget_item> items = random_items(gen, 40, 6, 3);
        const std::uint64_t lo = engine::budget_minimum(items), hi = engine::budget_maximum(items);
        double last = std::numeric_limits<double>::infinity();
        for (std::uint64_t b = lo; b <= hi + 3; b += 5) {
            const engine::budget_solution s = engine::solve_budget(items, b, cells);
            INFO("cells " << cells << ", budget " << b);
            REQUIRE(s.cost <= b);
            REQUIRE(s.error <= last + 1e-9);
            last = s.error;
        }
        if (cells < 1000) continue;  // rounded up, the dearest choices may not all fit
        // On the exact grid the whole span buys every item's least error.
        double least = 0;
        for (const engine::budget_item& it : items) {
            double m = it.candidates[0].error;
            for (const engine::budget_candidate& c : it.candidates) m = std::min(m, c.error);
            least += m;
        }
        CHECK(engine::solve_budget(items, hi, cells).error == Approx(least));
    }
}

TEST_CASE("budget: a model-sized instance (large costs, many tensors)") {
    // 112 matrices of a 7B-like model (16 layers), six widths: cost in bits, error falling 4x per bit.
    std::vector<engine::budget_item> items;
    const double bpw[] = {2.375, 3.1875, 4.125, 5.125, 6.125, 8.125};
    for (int i = 0; i < 112; ++i) {
        const std::uint64_t weights = i % 7 < 4 ? 4096ull * 4096 : 4096ull * 11008;
        engine::budget_item it{"m" + std::to_string(i), {}};
        for (double b : bpw)
            it.candidates.push_back({"int", std::uint64_t(b * double(weights)), double(weights) * (1.0 + i % 5) * std::pow(4.0, -b)});
        items.push_back(it);
    }
    std::uint64_t weights = 0;
    for (int i = 0; i < 112; ++i) weights += i % 7 < 4 ? 4096ull * 4096 : 4096ull * 11008;
    const std::uint64_t budget = std::uint64_t(3.5 * double(weights));
    const engine::budget_solution s = engine::solve_budget(items, budget);
    CHECK(s.cost <= budget);
    CHECK(double(s.cost) > 0.99 * double(budget));  // the budget is used
    // Better than every matrix at 3.1875 bits (which fits).
    double uniform3 = 0;
    for (const engine::budget_item& it : items) uniform3 += it.candidates[1].error;
    CHECK(s.error < uniform3);
}

TEST_CASE("budget: impossible budgets and bad input are one clear error") {
    const std::vector<engine::budget_item> items = {item("a", {{"a2", 2, 10.0}, {"a4", 4, 1.0}}),
                                                    item("b", {{"b3", 3, 8.0}, {"b4", 4, 5.0}})};
    CHECK_THROWS_WITH(engine::solve_budget(items, 4), Catch::Contains("below the least the candidates allow, 5"));
    CHECK_NOTHROW(engine::solve_budget(items, 5));
    CHECK_THROWS_WITH(engine::solve_budget({item("e", {})}, 10), Catch::Contains("tensor e has no candidate"));
    CHECK_THROWS_WITH(engine::solve_budget({item("n", {{"x", 1, std::nan("")}})}, 10), Catch::Contains("not finite"));
    CHECK_THROWS_WITH(engine::solve_budget({item("n", {{"x", 1, -1.0}})}, 10), Catch::Contains("negative"));
    // No tensors: nothing to choose, nothing spent.
    const engine::budget_solution none = engine::solve_budget({}, 0);
    CHECK(none.choice.empty());
    CHECK(none.cost == 0);
}
