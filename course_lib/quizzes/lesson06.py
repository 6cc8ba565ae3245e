"""Lesson 06's "Check your understanding": fine-tuning after pruning, why int8 costs so little, zeros vs structure, Pareto.

Every number is a format field over ``results/lesson06.json`` (the last full-mode run). The MNIST table's rows
are read by position, in the order lesson 06 writes them (its ``rows`` list); each prompt names the rows it quotes.
"""
from course_lib.quiz import Option, Question

_M = "lesson06[mnist]"
_FP32 = _M + "[fp32]"
_INT8 = _M + "[int8]"
_ZEROS90 = _M + "[rows][4]"  # pruned 90% (zeros)
_STRUCT = _M + "[rows][6]"  # structured 50%
_STRUCT_FT = _M + "[rows][7]"  # structured 50% + KD fine-tune
_STRUCT_FT_INT8 = _M + "[rows][10]"  # structured 50% + KD fine-tune, then int8
_STRUCT_INT8 = _M + "[rows][11]"  # structured 50%, then int8 (no fine-tune)

QUESTIONS = [
    Question(
        prompt=(f"In the last full-mode run, MNIST test errors: '{{{_STRUCT}[model]}}' {{{_STRUCT}[test_errors]}}; "
                f"'{{{_STRUCT_FT}[model]}}' {{{_STRUCT_FT}[test_errors]}}; '{{{_STRUCT_FT_INT8}[model]}}' "
                f"{{{_STRUCT_FT_INT8}[test_errors]}}; '{{{_STRUCT_INT8}[model]}}' {{{_STRUCT_INT8}[test_errors]}} "
                f"(the unpruned fp32 student: {{{_FP32}[test_errors]}}). Why fine-tune with the distillation loss "
                "after pruning, and why before int8?"),
        options=(
            Option("The fine-tune grows the removed units back, so the network returns to its original size with "
                   "better weights.",
                   why=("Nothing grows back. Structured pruning copied the surviving units into smaller layers, and "
                        f"the fine-tuned model's file stays at {{{_STRUCT_FT}[bytes]:,}} bytes against the fp32 "
                        f"student's {{{_FP32}[bytes]:,}}. (Unstructured pruning keeps its masks during the fine-tune, "
                        "so the zeroed weights stay zero too.) The fine-tune changes what the remaining weights do, "
                        "not how many there are.")),
            Option("Order does not matter: quantising first and fine-tuning the int8 file afterwards gives the same "
                   "result.",
                   why=("Once the weights are int8 in an ONNX file, ONNX Runtime runs them but cannot train them: "
                        "there is no 'afterwards' for the fine-tune. Quantising first and then training would need "
                        "quantisation-aware training, which simulates int8 during the fine-tune, a tool this lesson "
                        "does not use. The row quantised without a fine-tune shows what the pruning damage costs "
                        "when nothing repairs it.")),
            Option("The surviving weights can learn to do the work of the removed ones, and the teacher's cached "
                   "soft targets give every image a full distribution to learn from; this has to happen while the "
                   "weights are still trainable fp32, because an int8 file cannot be trained.",
                   correct=True,
                   why=("Pruning removes units the network was using, so accuracy drops; a short fine-tune lets the "
                        "rest re-arrange to cover for them. Lesson 02's distillation loss on the teacher's cached "
                        "logits is the signal the student was made with, so one cheap pass recovers much of the "
                        f"damage ({{{_STRUCT}[test_errors]}} errors down to {{{_STRUCT_FT}[test_errors]}}), and int8 "
                        f"on top changes little ({{{_STRUCT_FT_INT8}[test_errors]}}). Quantised without the "
                        f"fine-tune, the pruned model keeps its damage ({{{_STRUCT_INT8}[test_errors]}} errors).")),
            Option("The fine-tune is only needed because int8 loses accuracy; without quantisation a pruned model is "
                   "as accurate as before.",
                   why=(f"The pruning itself did the damage: '{{{_STRUCT}[model]}}', still fp32, made "
                        f"{{{_STRUCT}[test_errors]}} test errors against the unpruned student's "
                        f"{{{_FP32}[test_errors]}}. int8 on its own costs little (the int8 student made "
                        f"{{{_INT8}[test_errors]}}). The fine-tune repairs pruning, not quantisation.")),
        ),
    ),
    Question(
        prompt=(f"Stored as int8, the MNIST student's file went from {{{_FP32}[bytes]:,}} to {{{_INT8}[bytes]:,}} "
                f"bytes, its test errors from {{{_FP32}[test_errors]}} to {{{_INT8}[test_errors]}}, and it gave the "
                f"fp32 student's answer on {{{_M}[int8_argmax_agreement]:.2%}} of the test digits (last full-mode "
                "run). Why does cutting every weight to 8 bits cost so few errors?"),
        options=(
            Option("Because 8 bits keep about 8 significant decimal digits per weight, which is all a network needs.",
                   why=("8 bits hold 256 levels, between two and three decimal digits, far fewer than a 32-bit float's "
                        "seven or so. int8 works not because it is precise but because a network tolerates small, "
                        "scattered errors in its weights.")),
            Option("Because ONNX Runtime's quantize_dynamic trains the int8 model to match the fp32 one.",
                   why=("Dynamic quantisation trains nothing. It maps each weight tensor onto a grid of 256 levels "
                        "(a scale and a zero point), and quantises the activations on the fly at run time. The small "
                        "loss is a property of the rounding, not of any repair.")),
            Option("Because the distilled student's weights were already close to whole numbers, so rounding them "
                   "changes little.",
                   why=("The weights are small real numbers, mostly far below 1; they are not rounded to whole "
                        "numbers but to the nearest of 256 levels spread over each tensor's range. What keeps the "
                        "damage small is how small that step is compared with the range, and how the errors average "
                        "out.")),
            Option("Each weight moves by at most half a step of a 256-level grid fitted to its tensor's range, and "
                   "every unit sums hundreds of these small, unrelated errors, which partly cancel; only digits "
                   "close to a decision boundary change their answer.",
                   correct=True,
                   why=("The rounding error per weight is tiny compared with the spread of the weights, and a unit's "
                        "output is a sum over many inputs, so independent rounding errors grow only like the square "
                        "root of their number while the signal grows with it. A digit the model is sure of keeps its "
                        "top class; only the few near a boundary flip, which is why the answers agree on "
                        f"{{{_M}[int8_argmax_agreement]:.2%}} of the digits and the error count barely moves.")),
        ),
    ),
    Question(
        prompt=(f"In the last full-mode run, '{{{_ZEROS90}[model]}}' kept a .onnx file of {{{_ZEROS90}[bytes]:,}} "
                f"bytes (gzip: {{{_ZEROS90}[gzip_bytes]:,}}) and took {{{_ZEROS90}[ms_batch256]:.2f}} ms per batch "
                f"of 256; the unpruned fp32 student: {{{_FP32}[bytes]:,}} bytes (gzip: {{{_FP32}[gzip_bytes]:,}}), "
                f"{{{_FP32}[ms_batch256]:.2f}} ms; '{{{_STRUCT_FT}[model]}}': {{{_STRUCT_FT}[bytes]:,}} bytes, "
                f"{{{_STRUCT_FT}[ms_batch256]:.2f}} ms. Why did setting 90% of the weights to zero shrink neither "
                "the file nor the time?"),
        options=(
            Option("The zeros are still there: 32-bit floats in tensors of the same shape, multiplied by dense "
                   "kernels like any other number. Only a compressor notices the runs of zeros; removing whole units "
                   "makes the matrices really smaller.",
                   correct=True,
                   why=("Unstructured pruning changes values, not shapes. The file stores every weight, zero or not, "
                        "and a dense matrix multiply spends the same time on a zero as on any other number, so only "
                        f"the gzip size falls ({{{_ZEROS90}[gzip_bytes]:,}} bytes). Structured pruning removes rows "
                        "and columns, so the file and the work shrink together. Sparsity can pay on CPUs, but only "
                        "with sparse formats and kernels built for them, which this stack does not use.")),
            Option("The pruning masks were still attached, so the file stored every weight plus its mask.",
                   why=("The lesson folds the masks into the weights (compress.make_permanent) before exporting. A "
                        "model with its masks attached would be bigger than the unpruned one, storing each weight "
                        "twice plus the mask; the pruned file is the same size as the unpruned one, not bigger.")),
            Option("ONNX Runtime does skip the zeros, but at batch 256 the time goes into reading the images, not the "
                   "weights.",
                   why=("ONNX Runtime's dense kernels do not skip zero weights, and reading the images is not the "
                        "bottleneck: the structured student, given the same images, ran in "
                        f"{{{_STRUCT_FT}[ms_batch256]:.2f}} ms against {{{_FP32}[ms_batch256]:.2f}} ms, because its "
                        "matrices are smaller.")),
            Option("90% is not enough: unstructured pruning only saves time above about 99% sparsity.",
                   why=("On dense kernels no share of zeros saves anything: the shapes, the storage and the arithmetic "
                        "are those of the full matrix whatever the values. A higher sparsity helps only once the "
                        "model is stored and run in a sparse format, which is a change of representation, not more "
                        "pruning.")),
        ),
    ),
    Question(
        prompt=("In the last full-mode run the Pareto frontier of MNIST test errors against file size began with "
                "'{lesson06[pareto][0][model]}' ({lesson06[pareto][0][bytes]:,} bytes, "
                "{lesson06[pareto][0][test_accuracy]:.2%} test accuracy); the figure draws every model off the "
                "frontier in grey, as 'dominated'. What does it mean for a model to be off the frontier?"),
        options=(
            Option("It is too inaccurate to deploy.",
                   why=("The frontier has no accuracy threshold. A model with very few errors is still off it when "
                        "another model is at least as accurate and smaller; a model with many errors is on it when "
                        "nothing is both smaller and at least as accurate.")),
            Option("Another model is at least as accurate and at least as small (and better on one of the two), so "
                   "whatever the budget on size or errors, a model off the frontier is never the right choice.",
                   correct=True,
                   why=("That is what 'dominated' means, and the frontier is the set of models nothing dominates. A "
                        "model off it can be discarded without knowing the budget: for any limit on size or errors, "
                        "the model that dominates it meets the limit at least as well. The budget then picks among the "
                        "models that remain.")),
            Option("The model on the frontier with the fewest errors is the one to deploy; the rest of the frontier "
                   "is only for comparison.",
                   why=("The frontier is a menu, not a winner: each model on it is the best available at its size. "
                        "Which one to deploy depends on the budget; lesson 06 wrote its budget down (at most "
                        f"{{{_M}[budget_points]}} points of validation accuracy lost against the fp32 student) and "
                        f"chose '{{{_M}[chosen_on_validation]}}', the smallest file within it.")),
            Option("Every model on the frontier is both smaller and more accurate than every model off it.",
                   why=("A frontier model only has to be undominated: no other model is at least as good on both "
                        "axes. The most accurate model is on the frontier however large it is, so frontier models "
                        "can be bigger than many models off it; what they never are is beaten on both counts at "
                        "once.")),
        ),
    ),
]
