// Mixed precision under a budget: given, for every tensor, candidate types with what each costs
// (bits or bytes, the caller's unit) and the error it adds (measured on calibration data, or a
// weight error), choose one candidate per tensor so that the total cost fits the budget and the
// total error is least. This is the multiple-choice knapsack problem.
//
// Method: exact dynamic programming over a grid of the cost above each tensor's cheapest
// candidate. A Lagrangian search (greedy over the lower convex hull of each tensor's (cost,
// error) curve) is optimal only at the hull's corners and leaves up to one upgrade of the budget
// unused; for a model's few hundred tensors and handful of candidates the DP is cheap and exact:
//   - the grid unit is the greatest common divisor of all costs above the cheapest (a layer
//     matrix's cost is its weights times a multiple of 1/16 bit, so this unit is large), unless
//     that would make more than max_cells cells; then the unit is span / max_cells and each cost
//     is rounded up to whole cells, which keeps every solution within the budget and loses at
//     most one cell of the budget per tensor;
//   - the unit depends on the candidates only, never on the budget, so a larger budget never
//     gives a larger total error (the feasible sets grow);
//   - ties go to the cheaper candidate, then to the earlier one: the answer is deterministic.
// Memory: one byte per tensor and cell for the back-tracking (56 tensors x 18K cells for a 27M
// model; at most tensors x max_cells).
#pragma once
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <numeric>
#include <string>
#include <vector>

#include "../core/error.hpp"

namespace edgeq {
namespace engine {

struct budget_candidate {
    std::string type;     // what the tensor would be stored as ("gptq-int4-g128")
    std::uint64_t cost;   // what it takes of the budget (the caller's unit: bits, bytes)
    double error;         // the error it adds (finite, >= 0; the caller's measure)
};

struct budget_item {
    std::string name;  // the tensor, for messages
    std::vector<budget_candidate> candidates;
};

struct budget_solution {
    std::vector<std::size_t> choice;  // per item, an index into its candidates
    std::uint64_t cost = 0;           // total of the chosen costs (<= the budget)
    double error = 0;                 // total of the chosen errors
};

// The least any choice costs: every tensor at its cheapest candidate. Throws for an item
// without candidates.
inline std::uint64_t budget_minimum(const std::vector<budget_item>& items) {
    std::uint64_t total = 0;
    for (const budget_item& it : items) {
        if (it.candidates.empty()) throw error("budget: tensor " + it.name + " has no candidate type");
        std::uint64_t m = it.candidates[0].cost;
        for (const budget_candidate& c : it.candidates) m = std::min(m, c.cost);
        total += m;
    }
    return total;
}

// The most any choice costs: every tensor at its dearest candidate.
inline std::uint64_t budget_maximum(const std::vector<budget_item>& items) {
    std::uint64_t total = 0;
    for (const budget_item& it : items) {
        std::uint64_t m = 0;
        for (const budget_candidate& c : it.candidates) m = std::max(m, c.cost);
        total += m;
    }
    return total;
}

namespace detail {
inline std::uint64_t gcd_u64(std::uint64_t a, std::uint64_t b) {
    while (b) {
        const std::uint64_t t = a % b;
        a = b;
        b = t;
    }
    return a;
}
}  // namespace detail

// One candidate per item, total cost <= budget, least total error (see the top of this file).
// Throws edgeq::error when the budget is below budget_minimum(items), for an item without
// candidates or with more than 255, and for an error that is negative or not finite.
inline budget_solution solve_budget(const std::vector<budget_item>& items, std::uint64_t budget,
                                    std::size_t max_cells = std::size_t(1) << 18) {
    const std::size_t n = items.size();
    const std::uint64_t least = budget_minimum(items);
    for (const budget_item& it : items) {
        if (it.candidates.size() > 255) throw error("budget: tensor " + it.name + " has more than 255 candidate types");
        for (const budget_candidate& c : it.candidates)
            if (!(c.error >= 0) || !std::isfinite(c.error))
                throw error("budget: the error of " + c.type + " on " + it.name + " is negative or not finite");
    }
    if (budget < least)
        throw error("budget: " + std::to_string(budget) + " is below the least the candidates allow, " + std::to_string(least) +
                    " (every tensor at its cheapest type)");

    // Costs above each item's cheapest, their common unit and their span.
    std::vector<std::uint64_t> base(n);
    std::uint64_t unit = 0, span = 0;
    for (std::size_t i = 0; i < n; ++i) {
        std::uint64_t lo = items[i].candidates[0].cost, hi = lo;
        for (const budget_candidate& c : items[i].candidates) lo = std::min(lo, c.cost), hi = std::max(hi, c.cost);
        base[i] = lo;
        span += hi - lo;
        for (const budget_candidate& c : items[i].candidates) unit = detail::gcd_u64(unit, c.cost - lo);
    }
    if (unit == 0) unit = 1;  // every item has one cost
    if (max_cells == 0) max_cells = 1;
    if (span / unit > max_cells) unit = std::max(unit, (span + max_cells - 1) / max_cells);
    auto cells_of = [&](std::size_t i, std::size_t c) {
        const std::uint64_t extra = items[i].candidates[c].cost - base[i];
        return std::size_t((extra + unit - 1) / unit);
    };
    std::size_t span_cells = 0;
    for (std::size_t i = 0; i < n; ++i) {
        std::size_t m = 0;
        for (std::size_t c = 0; c < items[i].candidates.size(); ++c) m = std::max(m, cells_of(i, c));
        span_cells += m;
    }
    const std::size_t cells = std::size_t(std::min<std::uint64_t>((budget - least) / unit, span_cells)) + 1;

    // f[b]: the least error of the items so far within b cells; pick[i][b]: item i's candidate.
    std::vector<double> f(cells, 0.0), g(cells);
    std::vector<std::uint8_t> pick(n * cells);
    for (std::size_t i = 0; i < n; ++i) {
        const std::vector<budget_candidate>& cs = items[i].candidates;
        std::vector<std::size_t> order(cs.size());  // cheapest first, so ties go to the cheaper
        std::iota(order.begin(), order.end(), std::size_t(0));
        std::stable_sort(order.begin(), order.end(), [&cs](std::size_t a, std::size_t b) { return cs[a].cost < cs[b].cost; });
        std::vector<std::size_t> w(cs.size());
        for (std::size_t c = 0; c < cs.size(); ++c) w[c] = cells_of(i, c);
        for (std::size_t b = 0; b < cells; ++b) {
            double best = std::numeric_limits<double>::infinity();
            std::size_t arg = order[0];
            for (std::size_t c : order)
                if (w[c] <= b && f[b - w[c]] + cs[c].error < best) best = f[b - w[c]] + cs[c].error, arg = c;
            g[b] = best;
            pick[i * cells + b] = std::uint8_t(arg);
        }
        f.swap(g);
    }

    budget_solution s;
    s.choice.resize(n);
    std::size_t b = cells - 1;
    for (std::size_t i = n; i-- > 0;) {
        const std::size_t c = pick[i * cells + b];
        s.choice[i] = c;
        b -= cells_of(i, c);
    }
    for (std::size_t i = 0; i < n; ++i) {
        s.cost += items[i].candidates[s.choice[i]].cost;
        s.error += items[i].candidates[s.choice[i]].error;
    }
    if (s.cost > budget) throw error("budget: internal error, the solution exceeds the budget");  // cannot happen
    return s;
}

}  // namespace engine
}  // namespace edgeq
