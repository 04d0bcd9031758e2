using ContinualMoE.Data;
using ContinualMoE.Training;

namespace ContinualMoE.Methods;

/// <summary>
/// Joint multi-task LoRA: after each task, one LoRA and the head are trained further on the training data of every task
/// seen so far, over all seen classes at once (the cumulative upper bound, as <see cref="JointTraining"/> for the head).
/// </summary>
[ContinualMethod("joint-lora", "joint LoRA training on all data seen so far (upper bound of the LoRA methods)", Modalities = Data.InputModality.Image | Data.InputModality.Text)]
public sealed class JointLora(MethodContext context) : LoraLearner(context, "joint-lora", experts: 1), IRehearsalLearner
{
    public override string Name => "joint-lora";
    protected override ILabelledDataset? PhaseData(TaskContext task) => new ConcatDataset(task.SeenTrainSets);
    protected override bool[]? PhaseLogitMask(TaskContext task) => task.SeenClassMask;
}
