using ContinualMoE.Data;
using ContinualMoE.Training;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace ContinualMoE.Methods;

/// <summary>
/// MoCL (Wang et al., "Rehearsal-Free Modular and Compositional Continual Learning for Language Models", NAACL 2024;
/// official code boschresearch/MoCL-NAACL-2024, its LoRA variant: model/key_encoder.py TaskKeyEncoder and
/// mpeft/tuners/lora/layer.py): a per-task LoRA mixture with a learned router. Each task adds one LoRA expert and one
/// key vector k_t; an input's query q(x) is the frozen backbone's pooled feature (no gradient), and the experts of
/// the tasks seen so far are mixed per input with w = softmax(scale * cos(q(x), k_s)) over s &lt;= t
/// (TaskKeyEncoder._query_key_match and forward, softmax_match_scale 8). Per task t:
///   train  t's LoRA, t's key and the head (CE over t's classes) + matching * (1 - cos(q(x), k_t)) (matching_loss_v2);
///          the earlier experts and keys take part in the mixture but are frozen;
///   test   no task identity: query pass on the frozen backbone, then one adapted pass with the mixture of all seen
///          experts; the key with the highest cosine is the predicted task (reported as gate accuracy).
/// Differences from the official code (docs/methods/lora-baselines.md): weights are per sample (the official LoRA
/// layer averages them over the batch, which assumes single-task batches), and the earlier tasks' keys are frozen
/// (the official keys are one parameter, so earlier rows also receive the new task's gradient).
/// </summary>
[ContinualMethod("mocl", "MoCL: a LoRA expert per task mixed per input by a learned query-key router (NAACL 2024)",
    Modalities = Data.InputModality.Image | Data.InputModality.Text)]
public sealed class Mocl : LoraLearner
{
    private readonly ParameterList keys;

    public Mocl(MethodContext context) : base(context, "mocl", context.TaskCount, new LoraOptions())
    {
        keys = new ParameterList();
        using (no_grad())
            for (var t = 0; t < context.TaskCount; t++) keys.Add(new Parameter(empty(Readout.Width).uniform_(0, 1)));
        keys.to(Context.Device);
        Model.Add("keys", keys);
    }

    public override string Name => "mocl";
    public Parameter Key(int task) => (Parameter)keys[task];

    protected override int TrainedExpert(TaskContext task) => task.TaskIndex;

    protected override IReadOnlyList<ParameterGroup> ExtraParameterGroups(TaskContext task) => [new ParameterGroup("keys", [Key(task.TaskIndex)])];

    protected override StepOutput TrainStep(Batch batch, TaskContext task)
    {
        var t = task.TaskIndex;
        var cosine = Cosine(FrozenFeatures(() => Readout.Pooled(batch, null), null), t + 1);
        Tensor? matching = null;
        if (Options.MatchingLoss > 0)
            matching = cosine.select(1, t).neg().add(Scalars.Of(1)).mean().mul(Scalars.Of(Options.MatchingLoss));
        Bank.SampleWeights = Weights(cosine);
        try { return Readout.TrainingOutput(batch, Bank, matching); }
        finally { Bank.SampleWeights = null; }
    }

    /// <summary>cos(q(x), k_s) [B, <paramref name="tasks"/>] for the first <paramref name="tasks"/> keys.</summary>
    public Tensor Cosine(Tensor queries, int tasks)
    {
        using var scope = NewDisposeScope();
        var keys = stack(Enumerable.Range(0, tasks).Select(s => (Tensor)Key(s)).ToArray());
        return ContinualMoE.Prompts.PromptMatching.Cosine(queries.detach(), keys).MoveToOuterDisposeScope();
    }

    /// <summary>Expert weights [B, experts]: softmax(scale * cosine) over the seen tasks, zero for the others.</summary>
    public Tensor Weights(Tensor cosine)
    {
        using var scope = NewDisposeScope();
        var w = cosine.mul(Scalars.Of(Options.MatchScale)).softmax(-1);
        var unseen = Bank.Count - cosine.shape[1];
        if (unseen > 0) w = torch.cat([w, zeros(w.shape[0], unseen, device: w.device)], 1);
        return w.MoveToOuterDisposeScope();
    }

    public override Prediction Predict(Batch batch, EvaluationContext context)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var cosine = Cosine(FrozenFeatures(() => Readout.Pooled(batch, null), context), Math.Max(1, context.TasksTrained));
        Bank.SampleWeights = Weights(cosine);
        Prediction adapted;
        try { adapted = Readout.Predict(batch, Bank, context); }
        finally { Bank.SampleWeights = null; }
        return new Prediction(adapted.Logits.MoveToOuterDisposeScope(), cosine.argmax(1).MoveToOuterDisposeScope())
        {
            Scores = adapted.Scores?.MoveToOuterDisposeScope(),
        };
    }

    public override void EndTask(TaskContext task)
    {
        Bank.Freeze(task.TaskIndex);
        SyncKeyFreezing();
    }

    public override void LoadState(IReadOnlyDictionary<string, Tensor> state)
    {
        base.LoadState(state);
        SyncKeyFreezing();
    }

    /// <summary>A task's key is frozen with its expert.</summary>
    private void SyncKeyFreezing()
    {
        for (var t = 0; t < keys.Count; t++) Key(t).requires_grad = !Bank.IsFrozen(t);
    }

    /// <summary>LoRA experts in use, the seen tasks' keys and the head; two backbone passes per test image (query, then
    /// the adapted pass).</summary>
    public override MethodCost Cost(int tasksTrained)
    {
        var active = Enumerable.Range(0, Bank.Count).Count(Bank.IsActive);
        var trainable = Bank.ActiveParameterCount() + active * Key(0).numel() + (Head?.parameters().Sum(p => p.numel()) ?? 0);
        var bytes = Model.state_dict().Values.Sum(t => t.numel() * t.element_size());
        return new MethodCost(trainable, ParametersAddedPerTask, bytes, 2);
    }

    protected override long ParametersAddedPerTask =>
        Bank[0].Sites.Sum(s => (s.InFeatures + s.OutFeatures) * (long)Bank[0].Rank) + Key(0).numel();
}
