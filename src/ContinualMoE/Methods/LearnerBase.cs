using TorchSharp;
using ContinualMoE.Backbones;
using ContinualMoE.Training;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace ContinualMoE.Methods;

/// <summary>
/// What most methods share: the frozen backbone, the run settings, and state/cost bookkeeping over the method's own
/// trainable module. A method keeps all its learnable parameters and buffers in <see cref="Trainable"/>, so
/// <see cref="State"/>, <see cref="LoadState"/> and the parameter count follow from it.
/// </summary>
public abstract class LearnerBase : IContinualLearner
{
    protected LearnerBase(MethodContext context, nn.Module trainable)
    {
        Context = context;
        Trainable = trainable;
        Trainable.to(context.Device);
    }

    public abstract string Name { get; }
    protected MethodContext Context { get; }
    protected VisionTransformer Backbone => Context.Backbone;
    protected nn.Module Trainable { get; }

    public virtual void BeginTask(TaskContext task) { }
    public abstract IReadOnlyList<TrainingPhase> TrainingPhases(TaskContext task);
    public virtual void EndTask(TaskContext task) { }
    public abstract Prediction Predict(Tensor images, EvaluationContext context);

    /// <summary>Prediction for a whole batch (the trainer calls this); methods whose inputs are more than one tensor
    /// (text) override it.</summary>
    public virtual Prediction Predict(Data.Batch batch, EvaluationContext context) => Predict(batch.Inputs, context);

    /// <summary>The frozen backbone's pre-logits class token, without gradients. With an evaluation context that
    /// names the samples, each image's feature is computed once per run and reused (it never changes), which saves the
    /// query pass of two-pass methods on every evaluation after the first.</summary>
    protected Tensor FrozenFeatures(Tensor images, EvaluationContext? context = null)
    {
        if (context?.Samples is { } samples) return frozenFeatureCache.GetOrCompute(samples, () => FrozenFeatures(images));
        using var noGrad = no_grad();
        using var output = Backbone.ForwardFeatures(images);
        return output.Cls.clone();
    }

    /// <summary>A frozen-backbone feature computed by <paramref name="compute"/>, cached per sample as
    /// <see cref="FrozenFeatures(Tensor, EvaluationContext?)"/> does (for backbone-neutral forwards).</summary>
    protected Tensor FrozenFeatures(Func<Tensor> compute, EvaluationContext? context)
    {
        if (context?.Samples is { } samples) return frozenFeatureCache.GetOrCompute(samples, () => FrozenFeatures(compute, null));
        using var noGrad = no_grad();
        return compute();
    }

    /// <summary>The frozen features of the named samples, cached per sample as in evaluation (for training passes
    /// without augmentation, whose images repeat every epoch); <see cref="ForgetFrozenFeatures"/> frees them.</summary>
    protected Tensor FrozenFeatures(Tensor images, SampleIdentity samples) =>
        frozenFeatureCache.GetOrCompute(samples, () => FrozenFeatures(images));

    protected void ForgetFrozenFeatures(Data.ILabelledDataset dataset) => frozenFeatureCache.Forget(dataset);

    private readonly FrozenFeatureCache frozenFeatureCache = new();

    public virtual IReadOnlyDictionary<string, Tensor> State() =>
        Trainable.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value);

    public virtual void LoadState(IReadOnlyDictionary<string, Tensor> state)
    {
        var own = Trainable.state_dict();
        var missing = own.Keys.Where(k => !state.ContainsKey(k)).ToList();
        if (missing.Count > 0)
            throw new ContinualMoEException($"checkpoint lacks the {Name} state {string.Join(", ", missing.Take(5))}");
        using var noGrad = no_grad();
        foreach (var (key, target) in own)
        {
            var source = state[key];
            if (!source.shape.SequenceEqual(target.shape))
                throw new ContinualMoEException($"checkpoint state '{key}' has shape [{string.Join(", ", source.shape)}], the {Name} learner needs [{string.Join(", ", target.shape)}]");
            target.copy_(source);
        }
    }

    public virtual MethodCost Cost(int tasksTrained)
    {
        var trainable = Trainable.parameters().Sum(p => p.numel());
        var bytes = Trainable.state_dict().Values.Sum(t => t.numel() * t.element_size());
        return new MethodCost(trainable, ParametersAddedPerTask, bytes, BackbonePassesPerTestImage);
    }

    protected virtual long ParametersAddedPerTask => 0;
    protected virtual int BackbonePassesPerTestImage => 1;

    /// <summary>Parameters of <paramref name="module"/> that require gradients.</summary>
    protected static IReadOnlyList<Parameter> TrainableParameters(nn.Module module) =>
        module.parameters().Where(p => p.requires_grad).ToList();

    public virtual void Dispose()
    {
        frozenFeatureCache.Dispose();
        Trainable.Dispose();
        GC.SuppressFinalize(this);
    }
}
