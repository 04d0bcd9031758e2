using System.CommandLine;
using ContinualMoE.Cli.Commands;

namespace ContinualMoE.Tests.Cli;

public class CompareCommandTests
{
    [Fact]
    public void ComparesMethodsOnTheSameScenario()
    {
        var folder = Path.Combine(Path.GetTempPath(), "cmoe-compare-" + Guid.NewGuid().ToString("N"));
        try
        {
            var code = CompareCommand.Create().Parse([
                "--methods", "ncm,finetune-head", "--backbone", "vit_nano_patch4_32", "--backbone-weights", "none", "--tasks", "2",
                "--epochs", "1", "--set", "generated_classes=4", "generated_train_per_class=16", "generated_test_per_class=8", "--output", folder,
            ]).Invoke();
            Assert.Equal(0, code);
            var lines = File.ReadAllLines(Path.Combine(folder, "comparison.csv"));
            Assert.Equal(3, lines.Length);
            Assert.StartsWith("ncm,", lines[1]);
            Assert.StartsWith("finetune-head,", lines[2]);
            Assert.True(File.Exists(Path.Combine(folder, "average_accuracy.png")));
            Assert.True(File.Exists(Path.Combine(folder, "ncm", "accuracy_matrix.csv")));
        }
        finally
        {
            if (Directory.Exists(folder)) Directory.Delete(folder, recursive: true);
        }
    }
}
