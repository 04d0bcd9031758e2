using ContinualMoE.LowRank;
using ContinualMoE.Training;
using static TorchSharp.torch;

namespace ContinualMoE.Methods;

/// <summary>
/// O-LoRA (Wang et al., "Orthogonal Subspace Learning for Language Model Continual Learning", EMNLP Findings 2023): each
/// task trains a new LoRA while the earlier ones stay frozen and keep acting (all summed at weight 1, no task identity at
/// test), with an orthogonality loss that keeps the new LoRA's A (its input subspace) away from the earlier ones':
/// L_orth = sum_{s &lt; t} sum_sites sum_ij |(A_s A_t^T)_ij| (paper eq. 7), weighted by lambda_1 (paper's 0.5, setting
/// <c>strength</c>), plus lambda_2 ||A_t, B_t||^2 (setting <c>l2</c>, default 0). Parameters grow by one LoRA per task.
/// </summary>
[ContinualMethod("o-lora", "O-LoRA: a new LoRA per task, orthogonal to the earlier tasks' (EMNLP Findings 2023)", Modalities = Data.InputModality.Image | Data.InputModality.Text)]
public sealed class OLora : LoraLearner, ITaskAloneEquivalent
{
    public OLora(MethodContext context) : base(context, "o-lora", experts: context.TaskCount) { }

    public override string Name => "o-lora";
    /// <summary>Alone (one task, one LoRA) there is nothing to be orthogonal to: plain LoRA, unless the L2 term changes the loss.</summary>
    public string TaskAloneLearner => Options.L2 == 0 ? PlainLoraAlone : $"o-lora {System.Text.Json.JsonSerializer.Serialize(Options)}";
    protected override int TrainedExpert(TaskContext task) => task.TaskIndex;
    protected override double DefaultStrength => 0.5;

    protected override Tensor? AuxiliaryLoss(TaskContext task)
    {
        Tensor? loss = null;
        if (Strength > 0 && !task.IsFirstTask) loss = OrthogonalityLoss(task.TaskIndex).mul(Scalars.Of(Strength));
        if (Options.L2 > 0)
        {
            var l2 = Bank[task.TaskIndex].Parameters().Select(p => p.square().sum()).Aggregate((a, b) => a.Plus(b)).mul(Scalars.Of(Options.L2));
            loss = loss is null ? l2 : loss.Plus(l2);
        }
        return loss;
    }

    /// <summary>sum over earlier tasks s and sites of sum |A_s A_t^T|.</summary>
    public Tensor OrthogonalityLoss(int task)
    {
        using var scope = NewDisposeScope();
        Tensor total = zeros(1).squeeze();
        for (var s = 0; s < task; s++)
            for (var site = 0; site < Bank.Sites.Count; site++)
                total = total.Plus(Bank[s].Down(site).detach().matmul(Bank[task].Down(site).t()).abs().sum());
        return total.MoveToOuterDisposeScope();
    }

    public override void EndTask(TaskContext task) => Bank.Freeze(task.TaskIndex);

    protected override long ParametersAddedPerTask => Bank[0].Sites.Sum(s => (s.InFeatures + s.OutFeatures) * (long)Bank[0].Rank);
}
