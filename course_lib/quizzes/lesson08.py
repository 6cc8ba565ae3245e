"""Lesson 08's "Check your understanding": what listwise KD preserves, ordering vs coordinates, recall vs overlap,
the listwise temperature, and cost against quality.

Every number is a format field over ``results/lesson08.json`` (the last full-mode run); which student reproduced
the teacher's top 10 better is computed from the measured paired interval.
"""
from course_lib.quiz import Option, Question

_S = "lesson08[students]"
_LIST = _S + "[listwise_kd]"
_REG = _S + "[embedding_regression]"
_LAB = _S + "[labels_only]"
_OVERLAP = "lesson08[comparisons][topk_overlap_10: listwise_kd vs embedding_regression]"
_RECALL = "lesson08[comparisons][recall_at_10: listwise_kd vs embedding_regression]"


def _overlap(results: dict) -> tuple:
    """(significant, mean) of listwise KD minus embedding regression in top-10 overlap with the teacher."""
    c = results["lesson08"]["comparisons"]["topk_overlap_10: listwise_kd vs embedding_regression"]
    return c["significant"], c["mean"]


def _regression_better(results: dict) -> bool:
    significant, mean = _overlap(results)
    return significant and mean < 0


def _listwise_better(results: dict) -> bool:
    significant, mean = _overlap(results)
    return significant and mean >= 0


def _not_separable(results: dict) -> bool:
    return not _overlap(results)[0]


QUESTIONS = [
    Question(
        prompt=("Embedding regression pulls the student's vector towards the teacher's (reduced to 128 dimensions by "
                "PCA). Listwise KD takes, for each query, the teacher's cosine scores over a list of "
                "{lesson08[listwise][list_size]} candidate emails, turns them into a distribution at temperature "
                "{lesson08[listwise][temperature]:g}, and trains the student's scores towards it with kd_loss. What "
                "does listwise KD ask the student to preserve?"),
        options=(
            Option("The teacher's coordinates, like embedding regression, only through a softer loss.",
                   why=("Listwise KD never compares a student vector with a teacher vector: it compares two "
                        "distributions over the same candidates, built from each model's own similarity scores. The "
                        "student can rotate, stretch or move its space anywhere; only how it scores the candidates "
                        "against each other is trained.")),
            Option("The teacher's ordering of the candidates for each query, how much more similar each is than the "
                   "others, wherever the student puts its vectors.",
                   correct=True,
                   why=("The loss sees only each list's scores, turned into a distribution: any student space that "
                        "scores the candidates alike, relative to each other, gets the same loss. That is the "
                        "teacher's ranking tendency, the fourth kind of knowledge the lesson names; embedding "
                        "regression transfers coordinates instead, which is a stronger demand than ranking alike.")),
            Option("The queues: candidates from the query's own queue should rank above the others.",
                   why=("That is the labels-only student's contrastive objective, which needs the true queue of every "
                        "training email. Listwise KD uses no labels: the teacher's scores are the only target, and "
                        "they rank emails within a queue as well as across queues.")),
            Option("Only the teacher's single best candidate for each query, because the temperature is low.",
                   why=("A low temperature sharpens the target distribution but leaves more than one candidate with "
                        "weight, and the KL divergence is taken over the whole list. (The query's own row is masked "
                        "out, because it would be everyone's top match and teach nothing.) The loss therefore "
                        "teaches how the top candidates compare, not only which one wins.")),
        ),
    ),
    Question(
        prompt=("Listwise KD is trained on the teacher's orderings, embedding regression on its coordinates. In the "
                f"last full-mode run their top-10 overlap with the teacher was {{{_LIST}[topk_overlap_10]:.1%}} and "
                f"{{{_REG}[topk_overlap_10]:.1%}}; paired over {{{_OVERLAP}[seeds]}} seeds, listwise minus regression "
                f"was {{{_OVERLAP}[mean]:+.2f}} points, 95% interval [{{{_OVERLAP}[low]:+.2f}}, "
                f"{{{_OVERLAP}[high]:+.2f}}]. Which student reproduced the teacher's top 10 better?"),
        options=(
            Option("Listwise KD, necessarily: it is the one trained on the teacher's orderings, so it reproduces "
                   "the teacher's top 10 best whatever the table shows.",
                   why=("What an objective aims at is a hypothesis; the measurement decides. Copying the teacher's "
                        "coordinates is itself a strong way to copy its neighbourhoods: a student whose vectors sat "
                        "on the teacher's would rank exactly like it. Read the paired interval, not the name of the "
                        "loss.")),
            Option("Neither, separably: the interval includes 0.",
                   correct=_not_separable,
                   why=("This is the reading when the interval contains 0: the seeds are consistent with no "
                        f"difference. Here it was [{{{_OVERLAP}[low]:+.2f}}, {{{_OVERLAP}[high]:+.2f}}] points.")),
            Option("Embedding regression, by more than seed noise: the whole interval lies below 0.",
                   correct=_regression_better,
                   why=("This is the reading when the interval of listwise minus regression lies wholly below 0; here "
                        f"it was [{{{_OVERLAP}[low]:+.2f}}, {{{_OVERLAP}[high]:+.2f}}] points. Matching the "
                        "teacher's coordinates keeps its neighbourhoods, top 10 included; listwise KD, trained on "
                        "sharp distributions over lists of candidates, can win on the true task instead (recall@10, "
                        f"listwise minus regression: {{{_RECALL}[mean]:+.2f}} points, [{{{_RECALL}[low]:+.2f}}, "
                        f"{{{_RECALL}[high]:+.2f}}]). Which metric matters is the product's choice.")),
            Option("Listwise KD, by more than seed noise: the whole interval lies above 0.",
                   correct=_listwise_better,
                   why=("This is the reading when the interval of listwise minus regression lies wholly above 0; here "
                        f"it was [{{{_OVERLAP}[low]:+.2f}}, {{{_OVERLAP}[high]:+.2f}}] points. Check the sign "
                        "convention before reading a paired difference: it is the first method minus the second.")),
        ),
    ),
    Question(
        prompt=("The labels-only student never saw the teacher. In the last full-mode run its recall@10 was "
                f"{{{_LAB}[recall_at_10]:.1%}} (the teacher's: {{lesson08[teacher][recall_at_10]:.1%}}), while its "
                f"top-10 overlap with the teacher was {{{_LAB}[topk_overlap_10]:.1%}}. How can both be true?"),
        options=(
            Option("One of the two metrics must be wrong: a ranker that finds the right emails must agree with a "
                   "teacher that also finds them.",
                   why=("Both can be right because they ask different questions. Many emails are right for a query "
                        "(every email of its queue), and two rankers can each fill their top 10 with right emails "
                        "while sharing almost none of them.")),
            Option("The labels-only student memorised the test queries' queues during training.",
                   why=("The test queries and the archive are held out: no student trains on them. The labels-only "
                        "student learned, from the training emails, to put emails of one queue close together, and "
                        "that generalises to new emails; it never learned which of them the teacher finds most "
                        "similar.")),
            Option("Top-10 overlap is measured on the training emails and recall@10 on the test queries.",
                   why=("Both are measured on the same test queries against the same held-out archive. The "
                        "difference is the reference: recall counts same-queue emails, overlap counts the teacher's "
                        "own top 10.")),
            Option("Recall@10 asks whether the top 10 are emails of the query's queue, and each queue has hundreds of "
                   "emails in the archive of {lesson08[sizes][archive]:,}; overlap asks whether they are the same "
                   "emails as the teacher's. A ranker can get the first right and the second almost entirely "
                   "different.",
                   correct=True,
                   why=("Recall is measured against the queue labels, overlap against the teacher's ordering within "
                        "them. The labels-only student learned the queues, which is all recall rewards, but nothing "
                        "about which same-queue emails the teacher finds closest. Measure a ranker twice, on the true "
                        "task and against the teacher: they can disagree, and which one matters depends on what the "
                        "agent needs from the top 10.")),
        ),
    ),
    Question(
        prompt=("The teacher's scores are cosine similarities, between -1 and 1. Listwise KD divides them by a "
                "temperature before the softmax, and the validation search chose T = "
                "{lesson08[listwise][temperature]:g}, while lesson 02 distilled its 800-800 MNIST student at T = "
                "{lesson02[chosen_temperature][800-800]:g}. Why does a good temperature here sit so far below 1?"),
        options=(
            Option("A smaller temperature makes the target distribution softer, exposing more of the teacher's dark "
                   "knowledge.",
                   why=("It is the other way round: dividing by a temperature below 1 stretches the scores and "
                        "sharpens the softmax; a temperature above 1 softens it. Lesson 02's students softened "
                        "classifier logits that spread over tens of units; cosines start out far too flat to need "
                        "softening.")),
            Option("Because kd_loss multiplies by T squared, a temperature above 1 would make the loss explode.",
                   why=("The T-squared factor keeps the gradients' scale comparable across temperatures; it does not "
                        "make a large temperature blow up (lesson 02 trained at T = {lesson02[chosen_temperature][800-800]:g} "
                        "without trouble). The reason "
                        "is the shape of the target distribution, not the loss's scale.")),
            Option("Scores between -1 and 1 differ by at most 2, so at T = 1 the softmax over the list is nearly "
                   "uniform and says almost nothing about the order; dividing by a small T stretches the "
                   "differences until the ranking shows.",
                   correct=True,
                   why=("A temperature acts on the spread of the scores. A classifier's logits spread over tens of "
                        "units, so T = {lesson02[chosen_temperature][800-800]:g} softens them; cosines between a query "
                        "and its candidates differ by tenths, so at T = 1 every candidate gets nearly the same "
                        "probability. Divided by {lesson08[listwise][temperature]:g}, the same differences become "
                        "several units, and the target distribution describes the ranking.")),
            Option("It makes no difference: the softmax keeps the order whatever T is, and listwise KD only uses the "
                   "order.",
                   why=("The softmax keeps the order, but the loss compares distributions, not orders: how sharp "
                        "the target is decides which candidates the student is pushed to tell apart, and at a high "
                        "temperature every target is close to uniform and the gradients carry little. The validation "
                        "search measured the effect even among small temperatures (lists of 256): the Spearman "
                        "correlation with the teacher's whole ordering was "
                        "{lesson08[listwise][validation_search][T=0.02,list=256][spearman]:.2f} at T = 0.02 and "
                        "{lesson08[listwise][validation_search][T=0.1,list=256][spearman]:.2f} at T = 0.1.")),
        ),
    ),
    Question(
        prompt=("In the last full-mode run the best distilled student kept "
                "{lesson08[kept_share_of_teacher_recall]:.1%} of the teacher's recall@10 at "
                "{lesson08[speedup_throughput]:,.0f} times its throughput, with an index of "
                f"{{{_LIST}[index_bytes]:,}} bytes against the teacher's {{lesson08[teacher][index_bytes]:,}}. Which "
                "conclusion is sound?"),
        options=(
            Option("For finding same-queue emails it is a cheap stand-in for the teacher, but an average hides "
                   "slices: check where it ranks differently (other languages, long emails) before trusting it "
                   "there.",
                   correct=True,
                   why=("The average is strong, and the slices are where a small model's limits show: on the "
                        "Spanish edge-case queries its recall@10 was "
                        "{lesson08[slices][edge: non_english_es][student_recall_at_10]:.1%} against the teacher's "
                        "{lesson08[slices][edge: non_english_es][teacher_recall_at_10]:.1%}, over only "
                        "{lesson08[slices][edge: non_english_es][queries]} queries, so with a wide margin of error. A "
                        "hashed n-gram model trained on English emails has no trained buckets for most Spanish "
                        "words; the teacher's pretrained encoder has at least seen some.")),
            Option("It keeps that share of the teacher's quality on every kind of email, since recall@10 is "
                   "averaged over all test queries.",
                   why=("An average over {lesson08[sizes][test_queries]:,} queries says little about a slice of "
                        "{lesson08[slices][edge: non_english_es][queries]}. The edge-case queries (other languages, "
                        "long policy complaints) are few beside the test queries, so the average barely feels them, "
                        "and that is exactly where the student and the teacher part ways.")),
            Option("The speed-up comes from the smaller index: 128 floats per email instead of 384.",
                   why=("The index is a third of the size, which saves memory and some search time, but the "
                        "throughput measured here is embedding emails, which never touches the index. The speed-up "
                        "is the work per email: one table lookup per word and word pair and a mean for the student, "
                        "a transformer over every token for the teacher.")),
            Option("The parameter counts explain it: the student's is that much smaller than the teacher's.",
                   why=("The student has {lesson08[student_parameters]:,} parameters and lesson 04's teacher "
                        "{lesson05[router][teacher][params]:,}: a few times fewer, not a thousand. Throughput "
                        "depends on the work per email, not on how many parameters are stored: the student reads "
                        "a few rows of its table per word, the teacher runs attention and feed-forward layers over "
                        "every token.")),
        ),
    ),
]
