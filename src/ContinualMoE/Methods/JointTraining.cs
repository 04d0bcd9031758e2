using ContinualMoE.Data;
using ContinualMoE.Training;
using static TorchSharp.torch;

namespace ContinualMoE.Methods;

/// <summary>
/// The upper bound: after each task, the linear head on the frozen backbone is trained on the training data of every
/// task seen so far, over all seen classes at once (Avalanche's "cumulative" strategy), so the accuracy matrix is
/// defined after every task like the other methods'.
/// </summary>
[ContinualMethod("joint", "joint training of a linear head on all data seen so far (upper bound)")]
public sealed class JointTraining : LearnerBase
{
    public sealed record Options(int? Epochs = null, double? LearningRate = null);

    private readonly Options options;
    private readonly nn.Module<Tensor, Tensor> head;

    public JointTraining(MethodContext context) : this(context, nn.Linear(context.Backbone.EmbedDim, context.ClassCount)) { }

    private JointTraining(MethodContext context, nn.Module<Tensor, Tensor> head) : base(context, head)
    {
        this.head = head;
        options = context.Settings.Bind(new Options(), Name);
    }

    public override string Name => "joint";

    public override IReadOnlyList<TrainingPhase> TrainingPhases(TaskContext task) =>
    [
        new TrainingPhase
        {
            Name = "joint",
            Epochs = options.Epochs ?? Context.Training.Epochs,
            Parameters = [new ParameterGroup("head", TrainableParameters(head))],
            Optimizer = new OptimizerSettings { Kind = OptimizerKind.Adam, LearningRate = options.LearningRate ?? Context.Training.LearningRate },
            Data = new ConcatDataset(task.SeenTrainSets),
            LogitMask = task.SeenClassMask,
            Step = batch => new StepOutput(head.forward(FrozenFeatures(batch.Images))),
        },
    ];

    public override Prediction Predict(Tensor images, EvaluationContext context) => new(head.forward(FrozenFeatures(images, context)));
}
