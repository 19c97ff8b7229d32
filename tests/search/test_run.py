"""The finalists of a search: the screening Pareto front within the constraints, best by the objective first, with the
recipe's own chain and the incumbents."""

from optimizer.search.run import finalists, front


def test_the_pareto_front_on_given_figures():
    points = {"a": (99.0, 2.0, 3.0), "b": (99.0, 1.0, 4.0), "c": (98.0, 1.0, 2.0), "d": (99.0, 2.0, 3.0)}
    assert front(points) == ["a", "b", "d"]  # c is beaten by a on every figure; a and d tie, neither beats the other


def _trial(i, speedup, score=99.0, p99=2.0, violations=(), status="ok"):
    return {"trial": i, "status": status, "score": score, "speedup": speedup, "p99_ratio": p99,
            "violations": list(violations), "objective_figure": speedup}


def testfinalists_are_the_front_best_first_with_the_recipes_own_chain():
    trials = [_trial(0, 2.0, p99=1.0), _trial(1, 5.0), _trial(2, 9.0, violations=["accuracy drop 3 > 1"]),
              _trial(3, 4.0, score=99.5), _trial(4, 1.0, status="failed"), _trial(5, 3.0, score=98.0)]
    assert finalists(trials, 6) == ["trial1", "trial3", "trial0"]  # 2: outside the constraints; 5: dominated by 1
    assert finalists(trials, 2) == ["trial1", "trial0"]  # the recipe's own chain stays, the front is cut
    assert finalists(trials, 2, fixed=2) == ["trial0", "trial1"]  # trial 1 an incumbent: both kept, no room left
