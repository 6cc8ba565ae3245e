"""Lesson 07's "Check your understanding": on-policy KD, untrained positions, paired seeds, the verdict, cost.

Every number is a format field over ``results/lesson07.json`` (the last full-mode run). Whether any distilled
student beat the ground-truth student is computed from the measured paired intervals, so the right answer
follows the run.
"""
from course_lib.quiz import Option, Question

_C = "lesson07[comparisons]"
#: The distilled methods, as lesson 07 names them in its comparisons ("ground truth vs <method>").
DISTILLED = ("token KD", "sequence KD", "sequence KD, longer prompts", "token + sequence KD", "on-policy KD")


def _vs_truth(results: dict) -> list:
    """(significant, mean) of ground truth minus each distilled method over k = 9-16, as lesson 07 computed them."""
    comparisons = results["lesson07"]["comparisons"]
    return [(comparisons[f"ground truth vs {m}"]["significant"], comparisons[f"ground truth vs {m}"]["mean"])
            for m in DISTILLED]


def _some_distilled_better(results: dict) -> bool:
    return any(significant and mean < 0 for significant, mean in _vs_truth(results))


def _truth_better_only(results: dict) -> bool:
    return not _some_distilled_better(results) and any(significant for significant, _ in _vs_truth(results))


def _none_separable(results: dict) -> bool:
    return not any(significant for significant, _ in _vs_truth(results))


def _interval(method: str) -> str:
    """A format template: the mean and 95% interval of ground truth minus ``method``."""
    key = f"{_C}[ground truth vs {method}]"
    return f"{method} {{{key}[mean]:+.2f}} [{{{key}[low]:+.2f}}, {{{key}[high]:+.2f}}]"


QUESTIONS = [
    Question(
        prompt=("Token KD trains the student on the true prefixes, sequence KD on the teacher's answers; on-policy "
                "KD lets the student write its own answers to fresh prompts and has the teacher score every "
                "position of them. Which problem is on-policy KD designed to fix?"),
        options=(
            Option("The teacher's mistakes: on its own answers, the student cannot copy the teacher's errors.",
                   why=("The teacher still supplies every target: at each position of the student's answer the "
                        "student is pulled towards the teacher's distribution, right or wrong. On-policy KD uses no "
                        "labels, so it cannot correct a teacher. (In the last full-mode run the teacher was wrong on "
                        "{lesson07[teacher_error_rate][prompts_long]:.2%} of the longer prompts.)")),
            Option("The cost of training: its teacher signal is computed once and cached.",
                   why=("It is the other way round. The token-level and sequence-level signals can be computed once "
                        "and cached, because the prefixes they use exist before training. On-policy KD needs the "
                        "teacher during training: it scores answers the student has not written yet.")),
            Option("The lack of labels: it is the only method that can learn from the unlabelled prompts.",
                   why=("Sequence KD and token + sequence KD learn from the same unlabelled prompts: the teacher "
                        "writes the answers. What sets on-policy KD apart is not the prompts but whose answers the "
                        "student trains on: its own.")),
            Option("Exposure bias: at test time the student reads its own earlier tokens, and a student that never "
                   "saw its own mistakes in training never learned what to do after one.",
                   correct=True,
                   why=("Token KD and sequence KD train on prefixes the student did not write (teacher forcing). At "
                        "generation time every prefix is the student's own, errors included, a distribution it never "
                        "trained on. On-policy KD trains exactly there: the student writes, the teacher says at "
                        "every position what it would have done. It is also why it costs more: the teacher runs "
                        "during training.")),
        ),
    ),
    Question(
        prompt=("In lesson 07's ablation the same student was trained on the same chains (at most 8 steps long) "
                "twice. With fixed positions, {lesson07[position_ablation][fixed positions][untrained_eval_positions]}"
                " of the position vectors its evaluation reads never received a gradient, and its validation exact "
                "match fell on the longest chains; with random position offsets in training, "
                "{lesson07[position_ablation][random offsets][untrained_eval_positions]} were left untrained (last "
                "full-mode run). Why can fixed positions make long chains look hard?"),
        options=(
            Option("Long chains compound errors: with a per-step error p, exact match falls like (1 - p)^k, and the "
                   "fixed-position model has a larger p.",
                   why=("Compounding is real, but it lowers exact match at every length alike, from k = 1 on; it "
                        "does not start at k = 9. And the two models of the ablation differ only in which positions "
                        "were trained: same size, same data, same steps. A fall-off that random offsets remove was "
                        "never about the number of dependent steps.")),
            Option("Steps past 8 are read at positions whose vectors never received a loss and keep their random "
                   "initial values, so the model fails there because of untrained positions, not because the chain "
                   "is long.",
                   correct=True,
                   why=("Under teacher forcing each step is the same small lookup; only the position it is read at "
                        "changes. A model trained on chains of at most 8 steps never computes a loss at the positions "
                        "of steps 9 and later, so their learned vectors stay random, and the model reads noise there. "
                        "Random offsets move each training answer to other positions, so every position the "
                        "evaluation uses gets trained; position_drift proves it (a vector that never moved was never "
                        "trained).")),
            Option("A one-layer student cannot hold more than 8 dependent steps; random offsets worked by making the "
                   "training chains longer.",
                   why=("Random offsets shift where an answer sits; they do not lengthen it: every labelled chain is "
                        "still at most 8 steps. And the same small model trained with offsets has no untrained "
                        "position left to fail on, which it could not fix if the limit were the model's depth.")),
            Option("Causal attention lets each position look back only 8 tokens, so it cannot see the table from "
                   "far along the answer.",
                   why=("Causal attention lets every position attend to all earlier positions, however far back: the "
                        "mask only hides the future. The table is always visible; what a fixed-position model lacks "
                        "past step 8 is trained position vectors.")),
        ),
    ),
    Question(
        prompt=("Every method ran with the same {lesson07[comparisons][ground truth vs token KD][seeds]} seeds. To "
                "compare ground truth with token KD, the lesson took for each seed the difference between the two "
                "students' mean exact match over k = 9-16, then a 95% t-interval over those differences: "
                + _interval("token KD") + " points in the last full-mode run. Why pair by seed?"),
        options=(
            Option("Both methods use the same seed for initialisation and data order and are scored on the same test "
                   "rows, so what a lucky or unlucky seed does to both cancels in their difference; the interval "
                   "measures how consistently one beats the other.",
                   correct=True,
                   why=("Pairing compares like with like: the difference per seed removes the variation the two runs "
                        "share, and the t-interval over the few differences accounts for how few seeds there are. "
                        "A difference is called significant only when that interval excludes 0, which is how the "
                        "lesson's verdict is decided.")),
            Option("Pairing counts every seed at every length of k = 9-16 as a separate sample, which narrows the "
                   "interval.",
                   why=("The unit of replication is the seed: the 8 lengths of one seed come from the same trained "
                        "model and are not independent samples, so the lesson averages them into one number per seed "
                        "first. The interval is over the seeds' differences, with their number of degrees of "
                        "freedom.")),
            Option("It is only a convention: comparing the two methods' means and standard deviations over the seeds "
                   "gives the same answer.",
                   why=("Unpaired, the seed-to-seed spread of each method enters the comparison in full, even the part "
                        "both methods share (a seed that is hard for one is often hard for the other). The paired "
                        "interval removes that shared part, so it can separate differences an unpaired comparison "
                        "would blur, and it can also show that a gap in means is not consistent across seeds.")),
            Option("With a paired interval any positive mean difference is significant, because the noise has "
                   "cancelled.",
                   why=("Pairing removes the shared part of the noise, not all of it: each method still varies with "
                        "its seed in its own way. The interval says how far the mean difference could move, and a "
                        "mean difference whose interval includes 0 is not separable from seed noise, however it "
                        "looks.")),
        ),
    ),
    Question(
        prompt=("Lesson 07's goal asked for a distilled student significantly above the ground-truth student over "
                "k = 9-16. Ground truth minus each distilled method (points, mean and 95% interval over the seeds; a "
                "negative number favours the distilled student) in the last full-mode run: "
                + "; ".join(_interval(m) for m in DISTILLED)
                + ". Was any distilled student significantly better than the ground-truth student?"),
        options=(
            Option("Yes: a distilled student with a higher mean over the seeds is better; the interval only says "
                   "by how much.",
                   why=("A higher mean over a few seeds can be luck. The interval is the test: if it includes 0, the "
                        "seeds are consistent with no difference at all, and the lesson calls the pair not separable "
                        "whatever the means say. The run's own verdict: {lesson07[verdict]}.")),
            Option("Yes: at least one interval lies entirely below 0, so that distilled student beats the "
                   "ground-truth student by more than seed noise explains.",
                   correct=_some_distilled_better,
                   why=("This is the reading when some interval of ground truth minus a distilled method lies wholly "
                        "below 0. Read the intervals above; the run's own verdict (best distilled minus ground truth, the "
                        "opposite sign): {lesson07[verdict]}.")),
            Option("No: every interval includes 0, so with these seeds no distilled student is separable from the "
                   "ground-truth student, whatever its mean.",
                   correct=_none_separable,
                   why=("This is the reading when every interval contains 0. The run's own verdict (best distilled "
                        "minus ground truth, the opposite sign): "
                        "{lesson07[verdict]}. When the students sit near the ceiling of 100% exact match, little room "
                        "is left for a difference to show: with {lesson07[task][n_test_per_length]} test rows per "
                        "length and {lesson07[comparisons][ground truth vs token KD][seeds]} seeds, a few tenths of a "
                        "point is within seed noise. A goal missed this way is missed on significance, not "
                        "necessarily on accuracy.")),
            Option("No: the ground-truth student is significantly better than at least one distilled student, and "
                   "none is significantly better than it.",
                   correct=_truth_better_only,
                   why=("This would be the reading if some interval of ground truth minus a distilled method lay "
                        "wholly above 0 and none wholly below. Read the intervals above; the run's own verdict: "
                        "{lesson07[verdict]}.")),
        ),
    ),
    Question(
        prompt=("The student has {lesson07[parameters][student]:,} parameters, the teacher "
                "{lesson07[parameters][teacher]:,}. In the last full-mode run the student wrote an answer of "
                "{lesson07[latency_ms_per_answer][steps]} steps {lesson07[speedup][latency]:.1f} times faster "
                "than the teacher at batch 1, and generated "
                "{lesson07[speedup][throughput]:.1f} times as many tokens per second at batch 256. Why is the "
                "batch-1 speed-up so much smaller than the ratio of parameters?"),
        options=(
            Option("At batch 1 much of each step is fixed overhead (Python, PyTorch's dispatch, launching many small "
                   "operations) that fewer parameters do not remove; batched, the arithmetic weighs more and more "
                   "of the size difference shows.",
                   correct=True,
                   why=("Each decoding step runs the same sequence of operations for both models, and for matrices "
                        "this small the time per operation is mostly bookkeeping, not multiply-adds. The teacher's "
                        "extra parameters cost arithmetic, which a batch of 256 makes visible: the throughput "
                        "speed-up is larger than the latency one. The parameter ratio overstates what a user waiting "
                        "for one answer gains.")),
            Option("The student writes longer answers than the teacher, which eats up its advantage.",
                   why=("Both models decode the same {lesson07[latency_ms_per_answer][steps]} steps for the same "
                        "prompts (greedy, no early stop), so the work per answer is the same number of steps for "
                        "each.")),
            Option("The timings are noise: the teacher and the student were timed at different moments.",
                   why=("They were timed interleaved on the same inputs (timing.time_interleaved), so background load "
                        "slows both alike, and the lesson reports the median with its interquartile range over "
                        "{lesson07[latency_ms_per_answer][student][n]} calls each. The gap between the latency and "
                        "the parameter ratio is systematic, not noise.")),
            Option("Latency grows with the square root of the parameter count, so a model with many times fewer "
                   "parameters is only a few times faster.",
                   why=("No such law holds. How latency depends on size changes with the batch, the hardware and the "
                        "overheads: the same two models gave a different speed-up at batch 256 "
                        "({lesson07[speedup][throughput]:.1f} times) than at batch 1. What flattens the batch-1 "
                        "speed-up is fixed per-step overhead.")),
        ),
    ),
]
