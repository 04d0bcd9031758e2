using System.Reflection;
using ContinualMoE.Backbones;
using ContinualMoE.Methods;
using ContinualMoE.Tests.Backbones;
using ContinualMoE.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace ContinualMoE.Tests.Methods;

/// <summary>
/// TorchSharp's Module.to replaces every parameter and buffer that has to be copied and rebinds the module's fields by
/// registered name; a field registered under another name keeps pointing at the disposed original. A device move and
/// a dtype change take the same path, and only the dtype change can run on a CPU-only build, so these tests make the
/// round trip float32 -> float64 -> float32.
/// </summary>
public class DeviceMoveTests
{
    public static TheoryData<string> Methods()
    {
        var data = new TheoryData<string>();
        foreach (var name in MethodRegistry.Names) data.Add(name);
        return data;
    }

    private static MethodContext Context() =>
        new(new VisionTransformer(VitTestModels.Tiny, seed: 1), 10, 3, CPU, 3,
            new TrainingSettings(Epochs: 1, LearningRate: 0.01, BatchSize: 8), MethodSettings.Empty);

    private static nn.Module Trainable(IContinualLearner learner) =>
        (nn.Module)typeof(LearnerBase).GetProperty("Trainable", BindingFlags.Instance | BindingFlags.NonPublic)!.GetValue(learner)!;

    [Theory]
    [MemberData(nameof(Methods))]
    public void EveryTensorFieldSurvivesAMoveAndBack(string method)
    {
        using var learner = MethodRegistry.Create(method, Context());
        var module = Trainable(learner);
        module.to(float64);
        module.to(float32);
        foreach (var m in module.modules().Prepend(module))
        {
            for (var type = m.GetType(); type is not null && type != typeof(nn.Module); type = type.BaseType)
            {
                foreach (var field in type.GetFields(BindingFlags.Instance | BindingFlags.NonPublic | BindingFlags.Public | BindingFlags.DeclaredOnly))
                {
                    if (field.GetValue(m) is not Tensor tensor) continue;
                    Assert.False(tensor.IsInvalid, $"{method}: field {type.Name}.{field.Name} points at a disposed tensor after Module.to");
                    if (tensor.is_floating_point()) Assert.Equal(ScalarType.Float32, tensor.dtype);
                }
            }
        }
        foreach (var (name, value) in learner.State())
            Assert.False(value.IsInvalid, $"{method}: state '{name}' is disposed after Module.to");
    }

    /// <summary>Module.to rebinds only fields of type Tensor/Parameter/Module; tensors a module keeps in arrays or
    /// lists (merged low-rank deltas, anchors, pools of prompts) must be rebound by the module itself, or they keep
    /// pointing at the disposed originals (float32 and the old device). A move to float64 shows every one of them.</summary>
    [Theory]
    [MemberData(nameof(Methods))]
    public void EveryTensorInFieldsArraysAndStateTakesTheNewDtype(string method)
    {
        using var learner = MethodRegistry.Create(method, Context());
        var module = Trainable(learner);
        module.to(float64);
        foreach (var (where, tensor) in TensorsHeldBy(module))
        {
            Assert.False(tensor.IsInvalid, $"{method}: {where} points at a disposed tensor after Module.to");
            if (tensor.is_floating_point()) Assert.True(tensor.dtype == ScalarType.Float64, $"{method}: {where} is {tensor.dtype} after Module.to(float64)");
        }
        foreach (var (name, value) in learner.State())
        {
            Assert.False(value.IsInvalid, $"{method}: state '{name}' is disposed after Module.to");
            if (value.is_floating_point()) Assert.True(value.dtype == ScalarType.Float64, $"{method}: state '{name}' is {value.dtype} after Module.to(float64)");
        }
        module.to(float32);
    }

    /// <summary>Every tensor a module of the tree holds in a field, directly or in an array/list field.</summary>
    private static IEnumerable<(string Where, Tensor Tensor)> TensorsHeldBy(nn.Module root)
    {
        foreach (var m in root.modules().Prepend(root))
            for (var type = m.GetType(); type is not null && type != typeof(nn.Module); type = type.BaseType)
                foreach (var field in type.GetFields(BindingFlags.Instance | BindingFlags.NonPublic | BindingFlags.Public | BindingFlags.DeclaredOnly))
                {
                    var value = field.GetValue(m);
                    if (value is Tensor tensor) yield return ($"field {type.Name}.{field.Name}", tensor);
                    else if (value is System.Collections.IEnumerable items and not string and not nn.Module)
                    {
                        var i = 0;
                        foreach (var item in items)
                        {
                            if (item is Tensor element) yield return ($"field {type.Name}.{field.Name}[{i}]", element);
                            i++;
                        }
                    }
                }
    }

    [Fact]
    public void SmopePredictsAndComputesItsLossesAfterAMoveAndBack()
    {
        using var smope = (Smope)MethodRegistry.Create("smope", Context());
        using (no_grad())
        {
            smope.Experts.Frequencies.fill_(1);
            smope.Experts.UpdateFrequentExperts();
            smope.Experts.SnapshotKeys();
        }
        var module = Trainable(smope);
        module.to(float64);
        module.to(float32);
        Assert.True(smope.Experts.PreviousKeys.equal(smope.Experts.Keys).all().item<bool>());
        Assert.True(float.IsFinite(smope.Experts.PrototypeLoss().item<float>()));
        using var noGrad = no_grad();
        using var prediction = smope.Predict(randn(2, 3, 16, 16), new EvaluationContext(1, Enumerable.Repeat(true, 10).ToArray(), null, null));
        Assert.Equal(new long[] { 2, 10 }, prediction.Logits.shape);
    }
}
