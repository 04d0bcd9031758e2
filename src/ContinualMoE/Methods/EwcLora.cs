using ContinualMoE.Data;
using ContinualMoE.LowRank;
using ContinualMoE.Training;
using static TorchSharp.torch;

namespace ContinualMoE.Methods;

/// <summary>
/// EWC on LoRA parameters: one LoRA trained across tasks with elastic weight consolidation (Kirkpatrick et al. 2017) on
/// its parameters only, online form (one anchor, accumulated Fisher; Schwarz et al. 2018). The Fisher is the squared
/// batch gradients of the task's loss on its un-augmented data after training, normalised to mean 1 per task (the same
/// <see cref="ElasticAnchor"/> as SETA's shared pool, so the two differ only by SETA's split, unique experts and gate).
/// Loss = CE + strength * sum Omega (theta - theta*)^2.
/// </summary>
[ContinualMethod("ewc-lora", "EWC on the parameters of one LoRA adapter", Modalities = InputModality.Image | InputModality.Text)]
public sealed class EwcLora : LoraLearner, ITaskAloneEquivalent
{
    private readonly ElasticAnchor anchor;

    public EwcLora(MethodContext context) : base(context, "ewc-lora", experts: 1)
    {
        anchor = new ElasticAnchor(() => Bank[0].Parameters().ToList());
        Model.Add("anchor", anchor);
    }

    public override string Name => "ewc-lora";
    /// <summary>A first task has no anchor, and the Fisher pass after it changes no parameter: plain LoRA alone.</summary>
    public string TaskAloneLearner => PlainLoraAlone;
    public ElasticAnchor Anchor => anchor;

    protected override Tensor? AuxiliaryLoss(TaskContext task) =>
        task.IsFirstTask || Strength <= 0 ? null : anchor.Penalty().mul(Scalars.Of(Strength));

    public override void EndTask(TaskContext task)
    {
        var parameters = Bank.TrainableParameters();
        foreach (var batch in task.Data.Loader(task.Train, augment: false, shuffle: false).Epoch(0))
        {
            using (batch)
            using (var scope = NewDisposeScope())
            {
                foreach (var p in parameters) p.grad?.zero_();
                var (loss, pooled) = Readout.LossAndPooled(batch, Bank, task.TaskClassMask);
                loss.backward();
                anchor.AccumulateSquaredGradients();
            }
        }
        foreach (var p in parameters.Concat(Readout.HeadParameters)) p.grad?.zero_();
        anchor.CommitTask();
    }
}
