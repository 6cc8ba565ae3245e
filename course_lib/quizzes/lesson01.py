"""Lesson 01's questions: temperature, the order of the probabilities, and what dark knowledge carries.

Lesson 01 writes no results file; the last question quotes lesson 02's omitted-digit run, which tests
lesson 01's idea.
"""
from course_lib.quiz import Option, Question

QUESTIONS = [
    Question(
        prompt="You divide a teacher's logits by T = 20 instead of T = 1 before the softmax. What happens to the "
               "order of its ten probabilities for one digit?",
        options=(
            Option("The small probabilities can overtake each other, so the runner-up may change.",
                   why="Temperature divides every logit by the same positive number, which keeps their order, and the "
                       "softmax keeps it too: p_i / p_j = exp((z_i - z_j) / T) is above 1 exactly when z_i > z_j, "
                       "whatever T is. The lesson checked it on every test digit: no runner-up changed between "
                       "T = 0.5 and T = 100."),
            Option("Once T is high enough, the winning class loses its top place.",
                   why="The same ratio p_i / p_j = exp((z_i - z_j) / T) stays above 1 for the winner against every "
                       "other class at any finite T. A high T shrinks the winner's lead towards nothing, but never "
                       "reverses it: the prediction (the argmax) does not depend on T."),
            Option("The order stays exactly the same; only the gaps between the probabilities change.",
                   correct=True,
                   why="Dividing by T > 0 keeps the logits' order and the softmax is monotone, so the ranking "
                       "of the wrong answers is fixed by the logits. T only decides how far apart the probabilities "
                       "are, that is, how much of that ranking a student can see."),
            Option("All ten probabilities become exactly 0.1 at T = 20.",
                   why="They approach 1/10 only in the limit of an infinite T. At T = 20 they still differ (the "
                       "teacher's mean entropy is still below the uniform log2(10) = 3.32 bits), and those "
                       "remaining differences are exactly what a student trained at T = 20 learns from."),
        ),
    ),
    Question(
        prompt="Trained on soft targets q, a student's gradient on logit i is p_i - q_i. Why does a student learn "
               "little of the teacher's dark knowledge from targets made at T = 1?",
        options=(
            Option("At T = 1 the teacher's soft targets are exactly one-hot, identical to the labels.",
                   why="Not exactly: a softmax is never exactly 0 for any class, so the wrong classes do get "
                       "probabilities (1e-4 for one, 1e-9 for another). The problem is their size, not their "
                       "absence: the information is in the targets but too small to move the gradient."),
            Option("At T = 1 a wrong class the teacher finds plausible (q = 1e-4) and an absurd one (q = 1e-9) are "
                   "both practically 0 in p_i - q_i, so the student gets the same push-down for both.",
                   correct=True,
                   why="The gradient only sees q_i next to the student's own p_i, and next to that both tiny "
                       "numbers round to zero. Raising T lifts them to distinct targets (the lesson printed the same "
                       "runners-up at T = 1 and T = 20), so the student is told 'push this one down, that one only "
                       "a little'."),
            Option("At T = 1 the gradients are so large that training diverges.",
                   why="Nothing diverges: T = 1 is ordinary cross-entropy against a distribution, and its gradient "
                       "p_i - q_i is bounded by 1 in size. The issue is the opposite one: the part of the gradient "
                       "that carries the ranking of the wrong classes is vanishingly small."),
            Option("The probabilities of the wrong classes are noise, so at any temperature they teach nothing.",
                   why="The dark-knowledge matrix says otherwise: averaged over validation digits, the teacher's "
                       "probabilities for wrong classes follow the shapes of digits (4 with 9, 3 with 5, 7 with 1). "
                       "Noise would not be so consistent, and lesson 02's omitted-digit run shows a student can "
                       "learn a whole class from it."),
        ),
    ),
    Question(
        prompt="In the explorer, the runner-up's probability rises as T grows, peaks, and then falls again. Why does "
               "it fall at very high temperatures?",
        options=(
            Option("Because at high T another class overtakes it and becomes the runner-up.",
                   why="Temperature never reorders the classes: the runner-up keeps the second-largest logit and "
                       "so the second-largest probability at every T. What changes is how much probability it holds, "
                       "not its rank."),
            Option("Because the softmax underflows at high T and small numbers are rounded off.",
                   why="A high T divides the logits by a large number, which makes them smaller and the softmax "
                       "better behaved, not worse. Underflow is a risk at low T, where the gaps between logits are "
                       "multiplied, not at high T."),
            Option("Because the entropy passes log2(10) = 3.32 bits and the distribution becomes invalid.",
                   why="The entropy of ten probabilities can never exceed log2(10); it only approaches it as all "
                       "ten approach 1/10. The distribution stays valid at every temperature."),
            Option("Because all ten probabilities head towards 1/10: once the winner has given away most of its lead, "
                   "the runner-up holds more than an equal share and starts passing it to the classes below it.",
                   correct=True,
                   why="Raising T moves probability from the winner to every other class, and the runner-up "
                       "gains most at first. As T keeps growing, everything flattens towards uniform, and a class "
                       "whose logit is above the mean (the runner-up's is) gives probability away. Its peak is where "
                       "the two effects balance."),
        ),
    ),
    Question(
        prompt="Lesson 02 removed every 3 from the transfer set. In the last full-mode run the student still got "
               "{lesson02[omitted3][threes_right_after_pct]:.1f}% of the test 3s right after raising the bias of "
               "class 3 (by a value chosen on validation). Where did it learn what a 3 looks like?",
        options=(
            Option("From the teacher's small probabilities for class 3 on other digits: 5s, 8s and 2s that look a "
                   "bit like a 3.",
                   correct=True,
                   why="That is the dark knowledge of this lesson. The soft targets of non-3s say how much each "
                       "of them resembles a 3, and that is enough for the student's weights to build a detector for "
                       "3s; only the bias of class 3 ends up too low, because no target ever had 3 on top. Even before "
                       "the bias fix the student got {lesson02[omitted3][threes_right_before_pct]:.1f}% of the test "
                       "3s right."),
            Option("From the validation images used to choose the bias.",
                   why="The validation images only chose one number, the bias added to class 3's logit. A bias "
                       "shifts how often class 3 wins; it cannot teach what a 3 looks like. Before the bias fix the "
                       "student already got {lesson02[omitted3][threes_right_before_pct]:.1f}% of the test 3s right, "
                       "so its weights knew 3s already."),
            Option("From the teacher's hard labels on the test 3s.",
                   why="The student never saw a test image during training, and the transfer set had no 3s at all, "
                       "so no label of any kind ever said '3'. Its knowledge came only through the probabilities the "
                       "teacher gave class 3 on other digits."),
            Option("From the jittered copies of the transfer set, which still contain shifted 3s.",
                   why="The 3s were removed from every jittered copy too (the lesson keeps only the rows whose label "
                       "is not 3). Jitter adds shifted versions of the digits that remain; it cannot add a class "
                       "that is not there."),
        ),
    ),
]
