using ContinualMoE.LowRank;
using ContinualMoE.Training;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace ContinualMoE.Methods;

/// <summary>
/// InfLoRA (Liang &amp; Li, "InfLoRA: Interference-Free Low-Rank Adaptation for Continual Learning", CVPR 2024;
/// official code liangyanshuo/InfLoRA, methods/inflora.py and models/vit_inflora.py). Each task gets its own LoRA
/// W + B_t A_t (our Down = their dimensionality-reduction matrix, paper's B; our Up = the trained one, paper's A).
/// Per task t:
///   begin  the input second moment C_t = E[x x^T] of every adapted layer input on t's data (the model with the earlier
///          tasks' LoRAs); with the memory's old-space projector P: C'_t = (I - P) C_t (eq. 10-11); the reduction
///          matrix is the top-rank left singular vectors of C'_t, transposed, divided by sqrt(3) (official _train), and
///          projected once more on I - P so that it is orthogonal to the old space even when C'_t has fewer than
///          rank directions. It is never trained;
///   train  only t's Up (and the head's rows of t's classes, via the trainer's class mask), CE over t's classes;
///          W + sum_s B_s A_s with the new B_t A_t x = 0 for every x in the old tasks' input space: no interference;
///   end    C_t again with the trained LoRA; the DualGPM memory grows with threshold lamb + (lame - lamb) t / T
///          (<see cref="InputSubspaceMemory"/>); t's LoRA is frozen and keeps acting (all summed at weight 1, as the
///          official forward sums B_s A_s over s &lt;= t; merging into W would give the same output);
///   test   one adapted pass with every task's LoRA, all seen classes' logits.
/// Defaults follow the official configs: k and v of every block, rank 10, lamb 0.95, lame 1.0 (docs/methods/lora-baselines.md).
/// </summary>
[ContinualMethod("inflora", "InfLoRA: per-task LoRA whose reduction matrix is orthogonal to the old tasks' input space (CVPR 2024)",
    Modalities = Data.InputModality.Image | Data.InputModality.Text)]
public sealed class InfLora : LoraLearner
{
    private readonly InputSubspaceMemory memory;
    private readonly int[] inputOfSite;
    private readonly int[] firstSiteOfInput;

    public InfLora(MethodContext context) : base(context, "inflora", context.TaskCount, new LoraOptions { Layers = ["k", "v"], Rank = 10 })
    {
        if (Bank.Sites.FirstOrDefault(s => s.InFeatures < Options.Rank) is { } narrow)
            throw new ContinualMoEException($"inflora: rank {Options.Rank} exceeds the {narrow.InFeatures} input features of {narrow.Site}; lower the setting 'rank'");
        (inputOfSite, firstSiteOfInput) = LowRankSites.SharedInputs(Bank.Sites);
        memory = new InputSubspaceMemory(firstSiteOfInput.Select(s => Bank.Sites[s].InFeatures).ToList());
        memory.to(Context.Device);
        Model.Add("memory", memory);
        FreezeReductions();
    }

    public override string Name => "inflora";
    public InputSubspaceMemory Memory => memory;
    /// <summary>Index into <see cref="Memory"/> of the input that site <paramref name="site"/> reads.</summary>
    public int InputOfSite(int site) => inputOfSite[site];

    protected override int TrainedExpert(TaskContext task) => task.TaskIndex;

    /// <summary>Only the up-projections: the reduction matrices are designed, not trained.</summary>
    protected override IReadOnlyList<Parameter> TrainedLoraParameters(TaskContext task) =>
        Enumerable.Range(0, Bank.Sites.Count).Select(s => Bank[task.TaskIndex].Up(s)).ToList();

    /// <summary>The threshold epsilon_t of task <paramref name="task"/> (official update_DualGPM).</summary>
    public double ThresholdOf(int task) => Options.Threshold + (Options.ThresholdEnd - Options.Threshold) * task / Context.TaskCount;

    public override void BeginTask(TaskContext task)
    {
        base.BeginTask(task);
        var moments = InputMoments(task);
        DesignReduction(task.TaskIndex, moments);
        foreach (var m in moments) m.Dispose();
    }

    /// <summary>Sets expert <paramref name="expert"/>'s reduction matrices from the new task's input moments (one per
    /// memory input), <see cref="InputSubspaceMemory.DesignReduction"/>.</summary>
    public void DesignReduction(int expert, IReadOnlyList<Tensor> moments)
    {
        using var noGrad = no_grad();
        for (var s = 0; s < Bank.Sites.Count; s++)
        {
            using var reduction = memory.DesignReduction(inputOfSite[s], moments[inputOfSite[s]], Bank[expert].Rank);
            var down = Bank[expert].Down(s);
            down.copy_(reduction.to(down.dtype).to(down.device));
        }
    }

    public override void EndTask(TaskContext task)
    {
        var moments = InputMoments(task);
        memory.Update(moments, ThresholdOf(task.TaskIndex));
        foreach (var m in moments) m.Dispose();
        Bank.Freeze(task.TaskIndex);
        FreezeReductions();
    }

    /// <summary>The bank's freezing switches whole experts; the reduction matrices are never trained.</summary>
    private void FreezeReductions()
    {
        for (var e = 0; e < Bank.Count; e++)
            for (var s = 0; s < Bank.Sites.Count; s++) Bank[e].Down(s).requires_grad = false;
    }

    /// <summary>E[x x^T] of every memory input over the task's un-augmented training data, through the current adapters.</summary>
    private IReadOnlyList<Tensor> InputMoments(TaskContext task)
    {
        Bank.StartInputMoments(firstSiteOfInput);
        using (no_grad())
            foreach (var batch in task.Data.Loader(task.Train, augment: false, shuffle: false).Epoch(0))
                using (batch)
                {
                    Bank.InputTokenMask = batch.AttentionMask;
                    try { Readout.Pooled(batch, Bank).Dispose(); }
                    finally { Bank.InputTokenMask = null; }
                }
        var perSite = Bank.StopInputMoments();
        return firstSiteOfInput.Select(s => perSite[s]!).ToList();
    }

    public override void LoadState(IReadOnlyDictionary<string, Tensor> state)
    {
        base.LoadState(state);
        FreezeReductions();
    }

    /// <summary>Trained numbers: the up-projections of the tasks so far and the head (the reduction matrices and the
    /// memory are designed state, counted in the state bytes).</summary>
    public override MethodCost Cost(int tasksTrained)
    {
        var ups = Enumerable.Range(0, Bank.Count).Where(Bank.IsActive).Sum(e => Enumerable.Range(0, Bank.Sites.Count).Sum(s => Bank[e].Up(s).numel()));
        var bytes = Model.state_dict().Values.Sum(t => t.numel() * t.element_size());
        return new MethodCost(ups + (Head?.parameters().Sum(p => p.numel()) ?? 0), ParametersAddedPerTask, bytes, 1);
    }

    protected override long ParametersAddedPerTask => Bank.Sites.Sum(s => s.OutFeatures * (long)Bank[0].Rank);
}
