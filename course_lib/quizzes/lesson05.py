"""Lesson 05's "Check your understanding": agreement vs accuracy, McNemar, slice intervals, calibration, the cascade.

Every number is a format field over ``results/lesson05.json`` (the last full-mode run); the McNemar question's
right answer is computed from the measured p-value and error counts.
"""
from course_lib.quiz import Option, Question

_R = "lesson05[router]"
_MC = _R + "[mcnemar]"


def _mcnemar(results: dict) -> tuple:
    """(p-value, emails only the student gets wrong, emails only the teacher gets wrong) on test."""
    router = results["lesson05"]["router"]
    return router["mcnemar_p"], router["mcnemar"]["student_only_errors"], router["mcnemar"]["teacher_only_errors"]


def _not_separable(results: dict) -> bool:
    return _mcnemar(results)[0] >= 0.05


def _student_worse(results: dict) -> bool:
    p, student_only, teacher_only = _mcnemar(results)
    return p < 0.05 and student_only > teacher_only


def _teacher_worse(results: dict) -> bool:
    p, student_only, teacher_only = _mcnemar(results)
    return p < 0.05 and student_only <= teacher_only


QUESTIONS = [
    Question(
        prompt=(f"In the last full-mode run the soft-target student sent {{{_R}[agreement]:.1%}} of the "
                f"{{lesson05[sizes][test]:,}} test emails to the same queue as the teacher. Why can you not report "
                "that number as the student's accuracy?"),
        options=(
            Option("You can: the teacher is the reference the student was trained to copy, so agreeing with it is "
                   "being right.",
                   why=(f"The teacher is not the ground truth: it routed only {{{_R}[teacher][accuracy]:.1%}} of the "
                        "same test emails to their true queue. Where it is wrong, agreeing with it is a mistake, and "
                        f"disagreeing can be right: on {{{_MC}[teacher_only_errors]}} test emails the student was "
                        "right and the teacher wrong. Only for a perfect teacher are the two the same measurement; otherwise any "
                        f"match between them (the student's accuracy was {{{_R}[student][accuracy]:.1%}}) is shared "
                        "mistakes and corrections cancelling, not an identity.")),
            Option("Agreement counts the mistakes both models share as successes and the student's corrections of "
                   "the teacher as failures: it measures how faithful a copy the student is, not how often it is "
                   "right.",
                   correct=True,
                   why=("Agreement compares two predictions; accuracy compares a prediction with the true queue. "
                        "When both models pick the same wrong queue, agreement goes up and accuracy does not; when the "
                        f"student is right and the teacher wrong ({{{_MC}[teacher_only_errors]}} test emails in the "
                        "last full-mode run), agreement goes down and accuracy does not. Agreement is still worth "
                        "reporting: faithfulness to the teacher is what distillation optimises. The student's "
                        f"accuracy, measured against the true queues, was {{{_R}[student][accuracy]:.1%}}; however "
                        "close it comes to the agreement, it answers a different question.")),
            Option("Agreement is measured on the validation emails and accuracy on the test emails, so they describe "
                   "different samples.",
                   why=("Both were measured on the same test emails. The difference is not the sample but the "
                        "reference: agreement checks the student against the teacher's queue, accuracy against the "
                        "true one. Two numbers on the same emails can still differ for that reason alone.")),
            Option("Agreement weighs each email by the student's confidence; accuracy counts every email once.",
                   why=("Neither uses confidence: both look only at each email's top queue and count every email "
                        "once. Confidence enters the calibration error and the cascade, not agreement. (Top-2 "
                        "agreement loosens the match to the student's two most likely queues, still without "
                        "weights.)")),
        ),
    ),
    Question(
        prompt=(f"On the test emails that exactly one of the two models got right, the student alone was wrong on "
                f"{{{_MC}[student_only_errors]}} and the teacher alone on {{{_MC}[teacher_only_errors]}}; McNemar's "
                f"exact test gave p = {{{_R}[mcnemar_p]:.2g}} (last full-mode run). What does the test ask, and what "
                "is its answer here?"),
        options=(
            Option("It gives the probability that the student and the teacher are equally accurate; here that "
                   "probability is p.",
                   why=("A p-value is not the probability of a hypothesis. It is the probability of a split at least "
                        "as uneven as the one observed if the hypothesis (the discordant emails fall to either model "
                        "like fair coin flips) were true. A small p says the data would be surprising under equal "
                        "error rates; it does not say how likely equal error rates are.")),
            Option("It asks whether the emails only one model gets right split evenly between the two; here they "
                   "split evenly enough that this test set cannot tell the two error rates apart.",
                   correct=_not_separable,
                   why=("This is the reading when p is 0.05 or more; here p = "
                        f"{{{_R}[mcnemar_p]:.2g}} ({{{_MC}[student_only_errors]}} against "
                        f"{{{_MC}[teacher_only_errors]}}). Emails both models get right, or both wrong, say nothing "
                        "about which is better, so McNemar ignores them. A large p does not prove the models equal: "
                        "it says this many discordant emails cannot separate them.")),
            Option("It asks whether the emails only one model gets right split evenly between the two; here the "
                   "split is too uneven for chance: the student really does make more errors than the teacher on "
                   "emails like these.",
                   correct=_student_worse,
                   why=("This is the reading when p is below 0.05 and the student is the one wrong more often; here "
                        f"p = {{{_R}[mcnemar_p]:.2g}} with {{{_MC}[student_only_errors]}} emails only the student "
                        f"got wrong against {{{_MC}[teacher_only_errors]}} only the teacher got wrong. McNemar looks "
                        "only at these discordant emails, because the ones both get right (or both wrong) say nothing "
                        "about which is better; under equal error rates each would fall to either model like a fair "
                        "coin.")),
            Option("It asks whether the emails only one model gets right split evenly between the two; here the "
                   "split is too uneven for chance, and it is the teacher that makes more errors.",
                   correct=_teacher_worse,
                   why=("This would be the reading if p were below 0.05 with the teacher wrong on more of the "
                        f"discordant emails. Here the student alone was wrong on {{{_MC}[student_only_errors]}} and "
                        f"the teacher alone on {{{_MC}[teacher_only_errors]}} (p = {{{_R}[mcnemar_p]:.2g}}): read "
                        "which model the uneven split favours before saying which is better.")),
        ),
    ),
    Question(
        prompt=(f"In the last full-mode run the student was right on {{{_R}[slices][edge: non_english_fr]"
                f"[student_accuracy]:.0%}} of the {{{_R}[slices][edge: non_english_fr][n]}} French edge-case emails, "
                f"95% Wilson interval {{{_R}[slices][edge: non_english_fr][student_ci][0]:.0%}} to "
                f"{{{_R}[slices][edge: non_english_fr][student_ci][1]:.0%}}; on the "
                f"{{{_R}[slices][queue: billing][n]}} test emails of the billing queue it was right on "
                f"{{{_R}[slices][queue: billing][student_accuracy]:.1%}}, interval "
                f"{{{_R}[slices][queue: billing][student_ci][0]:.1%}} to "
                f"{{{_R}[slices][queue: billing][student_ci][1]:.1%}}. Why is the French interval so much wider?"),
        options=(
            Option("Because the student is so often wrong on French emails: a low accuracy makes an interval wide.",
                   why=("For a given number of emails, a binomial interval is widest at 50% accuracy and narrows "
                        "towards 0% and 100% (the variance of one right-or-wrong answer is p(1 - p)). A low accuracy "
                        "is not what widens it; the number of emails is. The same accuracy measured on hundreds of "
                        "French emails would have a narrow interval.")),
            Option("Because the Wilson interval is over-cautious; accuracy plus or minus 1.96 standard errors would be "
                   "just as correct and narrower.",
                   why=("On a small slice with an accuracy far from 50%, the normal approximation is the one that "
                        "misleads: it is symmetric, can reach below 0% or above 100%, and covers the true accuracy "
                        "less often than it claims. Wilson's interval is built for exactly this case, which is why "
                        "lesson 05 uses it.")),
            Option("Because the teacher is also unsure about French emails, and the student's interval carries the "
                   "teacher's uncertainty too.",
                   why=("The student's Wilson interval comes from the student's right and wrong answers on the slice "
                        "alone; the teacher's answers do not enter it. (The paired bootstrap interval of the "
                        "teacher-minus-student gap does use both models, resampling the same emails for each.)")),
            Option(f"Because the slice holds only {{{_R}[slices][edge: non_english_fr][n]}} emails: an interval "
                   "narrows roughly with the square root of the number of emails, and "
                   f"{{{_R}[slices][queue: billing][n]}} emails pin an accuracy down far more tightly.",
                   correct=True,
                   why=("Each email is one right-or-wrong draw; with n of them the standard error of the accuracy is "
                        "about sqrt(p(1 - p) / n), so ten times the emails makes the interval about three times "
                        "narrower. That is why the edge-case suite holds 20 or more emails per tag, and why even then "
                        "a tag's interval spans tens of points: read a small slice's interval before its point "
                        "estimate, and do not rank slices by point estimates alone.")),
        ),
    ),
    Question(
        prompt=(f"Temperature scaling divided the student's logits by T = {{{_R}[temperature_scaling]:.2f}}, fitted "
                "on the validation emails; the student's expected calibration error on test went from "
                f"{{{_R}[ece][student]:.3f}} to {{{_R}[ece][student_scaled]:.3f}} (last full-mode run). What did it "
                "do to the student's test accuracy?"),
        options=(
            Option("Nothing: dividing all of an email's logits by the same positive number keeps their order, so "
                   "every email's top queue, and with it the accuracy, stays the same; only the confidence changes.",
                   correct=True,
                   why=("The softmax is monotonic and one positive T scales every logit alike, so the largest logit "
                        f"stays the largest. The student's accuracy stays {{{_R}[student][accuracy]:.1%}} whatever T "
                        "is; what changes is how sure each answer is, which is what the calibration error measures "
                        "and what the cascade's threshold reads.")),
            Option("It raised it: a better calibrated model makes fewer mistakes.",
                   why=("Calibration and accuracy are different properties. Calibration asks whether 90% confidence "
                        "means right 9 times in 10; accuracy asks how often the top answer is right. A model can be "
                        "perfectly calibrated and often wrong (say 60% sure and right 60% of the time), and temperature "
                        "scaling never changes which queue is on top.")),
            Option("It lowered it: a softer, less confident model picks the wrong queue more often.",
                   why=("Softer probabilities are still in the same order: the queue with the largest logit keeps the "
                        "largest probability. Confidence and the choice of queue are separate; scaling moves only "
                        "the first. (In the cascade, lower confidence sends more emails to the teacher, but those "
                        "are not errors.)")),
            Option("It depends on the emails: T is fitted on validation, so on test some predictions flip.",
                   why=("Where T was fitted does not matter: any positive T keeps the order of every email's logits, "
                        "on any split. Fitting on validation matters for the calibration error (a T fitted on test "
                        "would flatter the test number), not for which queue wins.")),
        ),
    ),
    Question(
        prompt=("The cascade hands an email to the teacher when the student's temperature-scaled confidence is "
                "below a threshold, chosen on validation as the lowest whose cascade reaches the teacher's "
                f"validation accuracy minus half a point: {{{_R}[cascade][threshold]:.2f}} in the last full-mode run. "
                f"On test it sent {{{_R}[cascade][share_to_teacher]:.1%}} of the emails to the teacher and was right "
                f"on {{{_R}[cascade][accuracy]:.1%}} (the teacher alone: {{{_R}[cascade][teacher_accuracy]:.1%}}), "
                f"at {{{_R}[cascade][cpu_s_per_million]:,.0f}} CPU-seconds per million emails against the teacher's "
                f"{{{_R}[teacher][cpu_s_per_million]:,.0f}}. Which statement about the threshold is right?"),
        options=(
            Option("It would be better chosen on the test emails: those are the ones the result is reported on.",
                   why=("A threshold tuned on the test emails fits their particular noise, and the test accuracy it "
                        "reports is then optimistic: it is no longer an estimate of what the cascade does on new "
                        "emails. Choosing on validation and reading test once keeps the test number honest, which "
                        f"is why the lesson reports validation ({{{_R}[cascade][validation_share_to_teacher]:.1%}} "
                        "sent to the teacher) and test separately.")),
            Option("A higher threshold only helps: the student keeps just the emails it is sure of, so accuracy "
                   "rises at no cost.",
                   why=("Every email under the threshold is read by the teacher as well, and the teacher is the "
                        f"expensive model ({{{_R}[teacher][cpu_s_per_million]:,.0f}} CPU-seconds per million emails "
                        f"against the student's {{{_R}[student][cpu_s_per_million]:,.0f}}). Raising the threshold "
                        "buys accuracy with teacher time; at a threshold above every confidence the cascade is the "
                        "teacher, at its full cost.")),
            Option("It trades teacher time for accuracy: raising it sends more emails to the teacher, which costs "
                   "CPU; chosen on validation, the test numbers stay an honest estimate of what that choice does on "
                   "new emails.",
                   correct=True,
                   why=("The cascade's accuracy and its cost both tend to rise with the threshold, so the threshold is a "
                        "price, set by a target (here the teacher's validation accuracy minus half a point). Setting "
                        "it on validation and reading the test split once keeps the reported "
                        f"{{{_R}[cascade][accuracy]:.1%}} at {{{_R}[cascade][share_to_teacher]:.1%}} of emails to "
                        "the teacher a fair prediction for new traffic, not a number tuned to the test set.")),
            Option("Once set, it also catches the sensitive emails (legal threats, bereavement, vulnerable "
                   "customers), because the student is unsure of those.",
                   why=("The cascade sends the emails the student is unsure of, and nothing makes an email that "
                        "needs a person an uncertain one: in the last full-mode run the cascade sent only "
                        f"{{{_R}[cascade][needs_person_share_to_teacher]:.0%}} of them to the teacher, and even the "
                        "teacher can only pick a queue. Escalation needs its own output and its own training data; "
                        "a confidence threshold is not a substitute.")),
        ),
    ),
]
