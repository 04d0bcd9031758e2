using ContinualMoE.Training;
using static TorchSharp.torch;

namespace ContinualMoE.Methods;

/// <summary>
/// Sequential fine-tuning of a linear head on the frozen backbone's class token: each task trains the head on its own
/// classes only. The lower bound every continual method must beat. <see cref="JointTraining"/> is the same head trained
/// on everything seen so far.
/// </summary>
// bf16 within 0.3 points of fp32 (docs/methods/precision.md, session 14): embedded default -0.3, split Fashion-MNIST +0.2.
[ContinualMethod("finetune-head", "sequential fine-tuning of a linear head on the frozen backbone (lower bound)", Bf16Safe = true)]
public class FineTuneHead : LearnerBase
{
    public sealed record Options(int? Epochs = null, double? LearningRate = null);

    private readonly Options options;
    private readonly nn.Module<Tensor, Tensor> head;

    public FineTuneHead(MethodContext context) : this(context, nn.Linear(context.Backbone.EmbedDim, context.ClassCount)) { }

    protected FineTuneHead(MethodContext context, nn.Module<Tensor, Tensor> head) : base(context, head)
    {
        this.head = head;
        options = context.Settings.Bind(new Options(), Name);
    }

    public override string Name => "finetune-head";

    public override IReadOnlyList<TrainingPhase> TrainingPhases(TaskContext task) => [HeadPhase(task)];

    /// <summary>The one phase: Adam on the head, over the task's data and classes.</summary>
    protected virtual TrainingPhase HeadPhase(TaskContext task) =>
        new()
        {
            Name = "head",
            Epochs = options.Epochs ?? Context.Training.Epochs,
            Parameters = [new ParameterGroup("head", TrainableParameters(head))],
            Optimizer = new OptimizerSettings { Kind = OptimizerKind.Adam, LearningRate = options.LearningRate ?? Context.Training.LearningRate },
            Step = batch => new StepOutput(head.forward(FrozenFeatures(batch.Images))),
        };

    public override Prediction Predict(Tensor images, EvaluationContext context) => new(head.forward(FrozenFeatures(images, context)));
}
