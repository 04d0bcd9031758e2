using ContinualMoE.Data;
using ContinualMoE.Training;
using static TorchSharp.torch;

namespace ContinualMoE.Methods;

/// <summary>
/// The upper bound: after each task, the linear head on the frozen backbone is trained on the training data of every
/// task seen so far, over all seen classes at once (Avalanche's "cumulative" strategy), so the accuracy matrix is
/// defined after every task like the other methods'. Otherwise exactly <see cref="FineTuneHead"/>.
/// </summary>
// bf16 within 0.3 points of fp32 (docs/methods/precision.md, session 14): embedded default +0.2, split Fashion-MNIST +0.05.
[ContinualMethod("joint", "joint training of a linear head on all data seen so far (upper bound)", Bf16Safe = true)]
public sealed class JointTraining : FineTuneHead, IRehearsalLearner
{
    public JointTraining(MethodContext context) : base(context, nn.Linear(context.Backbone.EmbedDim, context.ClassCount)) { }

    public override string Name => "joint";

    protected override TrainingPhase HeadPhase(TaskContext task) => base.HeadPhase(task) with
    {
        Name = "joint",
        Data = new ConcatDataset(task.SeenTrainSets),
        LogitMask = task.SeenClassMask,
    };
}
